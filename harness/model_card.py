"""A model version's registry metadata (system metadata and tags) -> a typed ModelCard.

Since azureml-assets PRs #5150 (2026-06-16) and #5190 (2026-07-01) system models keep their
compute allow-lists, tasks and deprecation dates in the version's *system metadata*
(``properties.system_metadata``: ``supportedComputes.finetuneComputes`` /
``.inferenceComputes``, ``tasks.fineTuningTasks``, ``deprecation.*``); tags keep
``model_specific_defaults``. Older assets still carry the allow-lists as tags, so both forms are
read and the card records which one each list came from.

Where the lists really are on the wire is not settled: the SDK team's recording of the live
registry (Azure/azure-sdk-assets python/sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/
test_model.pyTestModeltest_crud_model_with_system_metadata.json) shows a PUT with
``properties.system_metadata`` accepted and the GET that follows answering without any
``system_metadata`` or ``systemMetadata`` key. azure-ai-ml 1.35 sends and reads the snake-case
key; the recording shows the service returns neither, so the card follows the service: it looks
in every documented place (``ALLOW_LIST_PLACES``), records which one answered, and says where it
looked when none did (``compute.explicit_sizes`` then stops the run unless the sizes are chosen
explicitly).

Values arrive as strings more often than not: tags are always strings (lists as Python reprs,
dicts as JSON), and the publisher's ``stringify_dictionary``
(Azure/azureml-assets scripts/azureml-assets/azureml/assets/publish_utils.py) turns every system
metadata dict into JSON text and every list into its Python repr. Parsing them once, strictly,
here means a malformed value is reported with its name and text before any resource exists.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from harness.errors import ConfigError, TagError

FINETUNE_ALLOW_LIST = "finetune_compute_allow_list"
INFERENCE_ALLOW_LIST = "inference_compute_allow_list"
EVALUATION_ALLOW_LIST = "evaluation_compute_allow_list"
MODEL_SPECIFIC_DEFAULTS = "model_specific_defaults"
TASK = "task"

# Where a fact came from: the values of the card's ``*_source`` attributes.
FROM_SYSTEM_METADATA = "system_metadata"  # the wire key azure-ai-ml 1.35 sends
FROM_SYSTEM_METADATA_CAMEL = "systemMetadata"  # the camelCase every other property uses
METADATA_KEYS = (FROM_SYSTEM_METADATA, FROM_SYSTEM_METADATA_CAMEL)
FROM_TAGS = "tags"
FROM_PROPERTIES = "properties"  # the asset's own properties dict

# system_metadata keys, as the model specs in Azure/azureml-assets spell them
SUPPORTED_COMPUTES = "supportedComputes"
COMPUTE_KEYS = {
    FINETUNE_ALLOW_LIST: "finetuneComputes",
    INFERENCE_ALLOW_LIST: "inferenceComputes",
    EVALUATION_ALLOW_LIST: "evaluationComputes",
}
# system_metadata.SKU.<x>RecommendedSkus (Phi-3-mini-4k-instruct's spec at 4b41f8c)
SKU = "SKU"
RECOMMENDED_KEYS = {
    FINETUNE_ALLOW_LIST: "finetuneRecommendedSkus",
    INFERENCE_ALLOW_LIST: "inferenceRecommendedSkus",
    EVALUATION_ALLOW_LIST: "evaluationRecommendedSkus",
}
# The asset properties older system models carry, comma-separated: Azure/azureml-assets
# scripts/azureml-assets/azureml/assets/validate_assets.py (MLFlowModelProperties), read by
# azureml-examples' fine-tune samples as ``model.properties["finetune-recommended-sku"]``.
PROPERTY_KEYS = {
    FINETUNE_ALLOW_LIST: "finetune-recommended-sku",
    INFERENCE_ALLOW_LIST: "inference-recommended-sku",
    EVALUATION_ALLOW_LIST: "evaluation-recommended-sku",
}
TASKS = "tasks"
FINETUNE_TASKS = "fineTuningTasks"
DEPRECATION = "deprecation"
CHAT_COMPLETION = "chat-completion"
# deprecation field -> (system_metadata.deprecation key, the older assets' tag)
DEPRECATION_KEYS = {
    "finetune_deprecation": ("finetuneDeprecationDate", "FinetuneDeprecationDate"),
    "finetune_retirement": ("finetuneRetirementDate", "FinetuneRetirementDate"),
    "inference_deprecation": ("inferenceDeprecationDate", "InferenceDeprecationDate"),
    "inference_retirement": ("inferenceRetirementDate", "InferenceRetirementDate"),
}
STRICT_OPTION = "--strict-deprecation"

_SHOWN_CHARS = 300


class RetiredModelWarning(UserWarning):
    """The foundation model is past its fine-tune retirement date (an error with
    ``--strict-deprecation``)."""


@dataclass(frozen=True)
class Deprecation:
    """Archive state and lifecycle dates of a model version, and where the dates came from."""

    archived: bool = False
    finetune_deprecation: date | None = None
    finetune_retirement: date | None = None
    inference_deprecation: date | None = None
    inference_retirement: date | None = None
    source: str | None = None  # FROM_SYSTEM_METADATA, FROM_TAGS, or None without dates

    def dates(self) -> dict[str, str]:
        """Each known date as ISO text, by fact (``finetune_retirement``: ``2025-08-30``)."""
        return {
            name: value.isoformat()
            for name in DEPRECATION_KEYS
            if (value := getattr(self, name)) is not None
        }

    def describe(self) -> str:
        """One line for logs, plan and reports."""
        dates = [
            f"{name.replace('_', ' ')} {value}"
            for name in DEPRECATION_KEYS
            if (value := getattr(self, name)) is not None
        ]
        where = f" (from {self.source})" if dates else ""
        state = "archived" if self.archived else "not archived"
        return f"{state}; " + ("; ".join(dates) + where if dates else "no deprecation dates")


@dataclass(frozen=True)
class ModelCard:
    """What the harness needs to know about a foundation model, already validated.

    ``finetune_allow_list_source``, ``inference_allow_list_source`` and ``task_source`` say
    where each value came from (``"system_metadata"`` or ``"tags"``; None when absent).
    """

    name: str
    version: str
    id: str
    finetune_allow_list: tuple[str, ...] | None
    inference_allow_list: tuple[str, ...] | None
    evaluation_allow_list: tuple[str, ...] | None
    model_specific_defaults: Mapping[str, Any] = field(default_factory=dict)
    task: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    finetune_allow_list_source: str | None = None
    inference_allow_list_source: str | None = None
    task_source: str | None = None
    deprecation: Deprecation = field(default_factory=Deprecation)
    system_metadata: Mapping[str, Any] = field(default_factory=dict)  # as the registry sent it
    properties: Mapping[str, str] = field(default_factory=dict)  # the asset's properties
    metadata_key: str = FROM_SYSTEM_METADATA  # the wire key the system metadata came under

    @property
    def label(self) -> str:
        """``name:version``, the way error messages name the model."""
        return f"{self.name}:{self.version}"

    def report_fields(self) -> dict[str, Any]:
        """What the run report says of the model (its ``model`` event)."""
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "finetune_allow_list": list(self.finetune_allow_list or []),
            "inference_allow_list": list(self.inference_allow_list or []),
            "allow_list_source": self.finetune_allow_list_source,
            "inference_allow_list_source": self.inference_allow_list_source,
            "allow_lists": self.allow_lists_found(),
            "archived": self.deprecation.archived,
            "deprecation": self.deprecation.dates() or None,
        }

    def sources(self) -> dict[str, str | None]:
        """Where each allow-list and the task came from, for plan and reports."""
        return {
            FINETUNE_ALLOW_LIST: self.finetune_allow_list_source,
            INFERENCE_ALLOW_LIST: self.inference_allow_list_source,
            TASK: self.task_source,
        }

    def missing_allow_lists(self) -> tuple[str, ...]:
        """The fine-tune and inference allow-lists no place answered."""
        lists = (
            (FINETUNE_ALLOW_LIST, self.finetune_allow_list),
            (INFERENCE_ALLOW_LIST, self.inference_allow_list),
        )
        return tuple(name for name, values in lists if values is None)

    def allow_lists_found(self) -> str:
        """Where each allow-list came from, or where it was looked for in vain."""
        return "; ".join(
            f"{name} from {source}"
            if source
            else f"{name} not found (looked in {', '.join(allow_list_places(name))})"
            for name, source in (
                (FINETUNE_ALLOW_LIST, self.finetune_allow_list_source),
                (INFERENCE_ALLOW_LIST, self.inference_allow_list_source),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values, so the card can cross processes (pytest-xdist)."""
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "tags": dict(self.tags),
            "system_metadata": dict(self.system_metadata),
            "archived": self.deprecation.archived,
            "properties": dict(self.properties),
            "metadata_key": self.metadata_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Rebuild from ``to_dict`` by parsing the raw metadata again: one source of truth."""
        return model_card(
            data["name"],
            data["version"],
            data["id"],
            data.get("tags", {}),
            data.get("system_metadata") or {},
            bool(data.get("archived")),
            data.get("properties") or {},
            str(data.get("metadata_key") or FROM_SYSTEM_METADATA),
        )


def _shown(text: str) -> str:
    """The bad text, cut so that a huge value does not drown the message."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def _literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _parse(where: str, value: object) -> Any:
    """A structured value from either string form (Python literal or JSON); never ``eval``.

    A value that is not a string was already parsed by whoever read the registry and is
    returned unchanged. ``where`` names the value in the error ("model tag 'x'").
    """
    if not isinstance(value, str):
        return value
    for parse in (_literal, _json):
        ok, parsed = parse(value)
        if ok:
            return parsed
    raise TagError(
        f"{where} is neither a Python literal nor JSON: {_shown(value)}; "
        "fix it on the model in the registry or pick another model version"
    )


def parse_tag(name: str, value: object) -> Any:
    """Parse one structured tag (a list or dict) from either string form."""
    return _parse(f"model tag {name!r}", value)


def _size_list(where: str, raw: object) -> tuple[str, ...]:
    parsed = _parse(where, raw)
    if not isinstance(parsed, (list, tuple)) or not all(isinstance(x, str) for x in parsed):
        raise TagError(
            f"{where} must be a list of VM size names, found {type(parsed).__name__}: "
            f"{_shown(encode_tag(raw))}; fix it on the model"
        )
    return tuple(parsed)


def _metadata_object(metadata: Mapping[str, object], key: str) -> Mapping[str, Any] | None:
    """A system metadata object (sent as an object or as JSON text), or None when absent."""
    if key not in metadata or metadata[key] in (None, ""):
        return None
    where = f"system metadata {key!r}"
    parsed = _parse(where, metadata[key])
    if not isinstance(parsed, dict):
        raise TagError(
            f"{where} must be an object, found {type(parsed).__name__}: "
            f"{_shown(encode_tag(metadata[key]))}; fix it on the model"
        )
    return parsed


def allow_list_places(name: str) -> tuple[str, ...]:
    """Every place ``name`` (e.g. ``finetune_compute_allow_list``) is looked for, in the order
    read: the allow-lists proper first, the recommended sizes after them."""
    metadata = "properties.{" + "|".join(METADATA_KEYS) + "}"
    return (
        f"{metadata}.{SUPPORTED_COMPUTES}.{COMPUTE_KEYS[name]}",
        f"tag {name}",
        f"{metadata}.{SKU}.{RECOMMENDED_KEYS[name]}",
        f"properties.properties.{PROPERTY_KEYS[name]}",
    )


def _property_list(name: str, properties: Mapping[str, object]) -> tuple[str, ...] | None:
    """A ``*-recommended-sku`` property: comma-separated text (or a list literal)."""
    key = PROPERTY_KEYS[name]
    raw = properties.get(key)
    if raw in (None, ""):
        return None
    text = str(raw).strip()
    if text.startswith("["):
        return _size_list(f"model property {key!r}", text)
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _allow_list(
    name: str,
    tags: Mapping[str, object],
    metadata: Mapping[str, object],
    metadata_key: str,
    properties: Mapping[str, object],
) -> tuple[tuple[str, ...] | None, str | None]:
    """The first place of ``allow_list_places`` that answers, and which one it was."""
    computes = _metadata_object(metadata, SUPPORTED_COMPUTES) or {}
    key = COMPUTE_KEYS[name]
    if computes.get(key) is not None:
        where = f"system metadata '{SUPPORTED_COMPUTES}.{key}'"
        return _size_list(where, computes[key]), metadata_key
    if name in tags:
        return _size_list(f"model tag {name!r}", tags[name]), FROM_TAGS
    recommended = _metadata_object(metadata, SKU) or {}
    key = RECOMMENDED_KEYS[name]
    if recommended.get(key) is not None:
        where = f"system metadata '{SKU}.{key}'"
        return _size_list(where, recommended[key]), f"{metadata_key}.{SKU}"
    found = _property_list(name, properties)
    return (found, FROM_PROPERTIES) if found is not None else (None, None)


def _defaults(tags: Mapping[str, object]) -> Mapping[str, Any]:
    if MODEL_SPECIFIC_DEFAULTS not in tags:
        return {}
    parsed = parse_tag(MODEL_SPECIFIC_DEFAULTS, tags[MODEL_SPECIFIC_DEFAULTS])
    if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
        raise TagError(
            f"model tag {MODEL_SPECIFIC_DEFAULTS!r} must be a dict of parameter names to "
            f"values, found {type(parsed).__name__}: "
            f"{_shown(encode_tag(tags[MODEL_SPECIFIC_DEFAULTS]))}; fix the tag on the model"
        )
    return dict(parsed)


def _task(
    tags: Mapping[str, object], metadata: Mapping[str, object], metadata_key: str
) -> tuple[str | None, str | None]:
    """``tasks.fineTuningTasks`` (chat-completion when listed), else the ``task`` tag."""
    tasks = (_metadata_object(metadata, TASKS) or {}).get(FINETUNE_TASKS)
    if tasks:
        listed = _parse(f"system metadata '{TASKS}.{FINETUNE_TASKS}'", tasks)
        if isinstance(listed, list) and all(isinstance(t, str) for t in listed) and listed:
            return (CHAT_COMPLETION if CHAT_COMPLETION in listed else listed[0]), metadata_key
        raise TagError(
            f"system metadata '{TASKS}.{FINETUNE_TASKS}' must be a list of task "
            f"names, found {_shown(encode_tag(tasks))}; fix it on the model"
        )
    value = tags.get(TASK)
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, FROM_TAGS
    raise TagError(
        f"model tag {TASK!r} must be a string, found {type(value).__name__}: "
        f"{_shown(encode_tag(value))}; fix the tag on the model"
    )


def _date(where: str, value: object) -> date:
    """``2025-08-30`` or ``2025-08-30T00:00:00.000000Z`` (the specs use both) -> a date."""
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise TagError(f"{where} is not a date: {_shown(text)}; fix it on the model") from None


def _deprecation(
    tags: Mapping[str, object], metadata: Mapping[str, object], metadata_key: str, archived: bool
) -> Deprecation:
    found = _metadata_object(metadata, DEPRECATION) or {}
    if found:
        dates = {
            name: _date(f"system metadata '{DEPRECATION}.{key}'", found[key])
            for name, (key, _) in DEPRECATION_KEYS.items()
            if found.get(key)
        }
        source: str | None = metadata_key
    else:
        dates = {
            name: _date(f"model tag {tag!r}", tags[tag])
            for name, (_, tag) in DEPRECATION_KEYS.items()
            if tags.get(tag)
        }
        source = FROM_TAGS if dates else None
    return Deprecation(
        archived=archived,
        source=source,
        finetune_deprecation=dates.get("finetune_deprecation"),
        finetune_retirement=dates.get("finetune_retirement"),
        inference_deprecation=dates.get("inference_deprecation"),
        inference_retirement=dates.get("inference_retirement"),
    )


def encode_tag(value: object) -> str:
    """A tag value as a registry string. Every structured value is written as JSON: the one
    format any reader understands (MLflow's UI, jq, other languages) and lossless for what tags
    hold. The azureml registry's publisher also wrote Python reprs of lists; ``parse_tag``
    still reads those, but the harness never writes them."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def model_card(
    name: str,
    version: str,
    id: str,
    tags: Mapping[str, object],
    system_metadata: Mapping[str, object] | None = None,
    archived: bool = False,
    properties: Mapping[str, object] | None = None,
    metadata_key: str = FROM_SYSTEM_METADATA,
) -> ModelCard:
    """Build a ModelCard, raising TagError for any value the harness relies on that is
    malformed. ``system_metadata`` is the version's system metadata as sent, under the wire
    key ``metadata_key``; ``properties`` its asset properties (``properties.properties``)."""
    metadata = dict(system_metadata or {})
    props = {k: str(v) for k, v in (properties or {}).items()}
    lists = {
        name: _allow_list(name, tags, metadata, metadata_key, props)
        for name in (FINETUNE_ALLOW_LIST, INFERENCE_ALLOW_LIST, EVALUATION_ALLOW_LIST)
    }
    finetune, finetune_source = lists[FINETUNE_ALLOW_LIST]
    inference, inference_source = lists[INFERENCE_ALLOW_LIST]
    evaluation, _ = lists[EVALUATION_ALLOW_LIST]
    task, task_source = _task(tags, metadata, metadata_key)
    return ModelCard(
        name=name,
        version=version,
        id=id,
        finetune_allow_list=finetune,
        inference_allow_list=inference,
        evaluation_allow_list=evaluation,
        model_specific_defaults=_defaults(tags),
        task=task,
        tags={k: encode_tag(v) for k, v in tags.items()},
        finetune_allow_list_source=finetune_source,
        inference_allow_list_source=inference_source,
        task_source=task_source,
        deprecation=_deprecation(tags, metadata, metadata_key, archived),
        system_metadata=metadata,
        properties=props,
        metadata_key=metadata_key,
    )


def version_from_id(resource_id: str) -> str:
    """The version of a registry or workspace model-version resource: the last segment of its
    ``id`` (``azureml://registries/R/models/M/versions/V`` or the ARM path). The recorded
    registry GET (test_model.pyTestModeltest_crud_model_with_system_metadata.json) carries the
    MODEL's name in ``name`` and ``models`` in ``type``, so neither names the version."""
    head, sep, version = resource_id.rstrip("/").rpartition("/versions/")
    return version if sep and head and "/" not in version else ""


def card_from_resource(name: str, resource: Mapping[str, Any], version: str = "") -> ModelCard:
    """The card of one model-version resource as the registry (or workspace) returns it:
    system metadata under either wire spelling, tags, asset properties, archive state."""
    props: Mapping[str, Any] = resource.get("properties") or {}
    key = next((k for k in METADATA_KEYS if props.get(k)), FROM_SYSTEM_METADATA)
    resource_id = str(resource.get("id") or "")
    return model_card(
        name,
        version or version_from_id(resource_id),
        resource_id,
        props.get("tags") or {},
        props.get(key) or {},
        bool(props.get("isArchived")),
        props.get("properties") or {},
        key,
    )


def _today() -> date:
    return datetime.now(UTC).date()


def retirement_notice(card: ModelCard, strict: bool, today: date | None = None) -> str | None:
    """None while the model may still be fine-tuned; past its fine-tune retirement date, the
    warning to show, or ConfigError with ``strict`` (``--strict-deprecation``)."""
    retired_on = card.deprecation.finetune_retirement
    if retired_on is None or (today or _today()) <= retired_on:
        return None
    archived = ", and it is archived" if card.deprecation.archived else ""
    notice = (
        f"{card.label} passed its fine-tune retirement date {retired_on} (from "
        f"{card.deprecation.source}){archived}; the service may refuse to fine-tune it; "
        "pass --model-version (or --model-name) with a current model"
    )
    if strict:
        raise ConfigError(f"{notice}, or drop {STRICT_OPTION} to run anyway")
    return notice
