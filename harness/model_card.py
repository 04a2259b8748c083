"""A model version's registry metadata (system metadata and tags) -> a typed ModelCard.

Since azureml-assets PRs #5150 (2026-06-16) and #5190 (2026-07-01) system models keep their
compute allow-lists, tasks and deprecation dates in the version's *system metadata*
(``properties.system_metadata``: ``supportedComputes.finetuneComputes`` /
``.inferenceComputes``, ``tasks.fineTuningTasks``, ``deprecation.*``); tags keep
``model_specific_defaults``. Older assets still carry the allow-lists as tags, so both forms are
read and the card records which one each list came from.

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
from datetime import date, datetime, timezone
from typing import Any

from harness.errors import ConfigError, TagError

FINETUNE_ALLOW_LIST = "finetune_compute_allow_list"
INFERENCE_ALLOW_LIST = "inference_compute_allow_list"
EVALUATION_ALLOW_LIST = "evaluation_compute_allow_list"
MODEL_SPECIFIC_DEFAULTS = "model_specific_defaults"
TASK = "task"

# Where a fact came from: the values of the card's ``*_source`` attributes.
FROM_SYSTEM_METADATA = "system_metadata"
FROM_TAGS = "tags"

# system_metadata keys, as the model specs in Azure/azureml-assets spell them
SUPPORTED_COMPUTES = "supportedComputes"
COMPUTE_KEYS = {
    FINETUNE_ALLOW_LIST: "finetuneComputes",
    INFERENCE_ALLOW_LIST: "inferenceComputes",
    EVALUATION_ALLOW_LIST: "evaluationComputes",
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values, so the card can cross processes (pytest-xdist)."""
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "tags": dict(self.tags),
            "system_metadata": dict(self.system_metadata),
            "archived": self.deprecation.archived,
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


def _allow_list(
    name: str, tags: Mapping[str, object], metadata: Mapping[str, object]
) -> tuple[tuple[str, ...] | None, str | None]:
    """System metadata first (where the registry keeps the lists now), then the tag."""
    computes = _metadata_object(metadata, SUPPORTED_COMPUTES) or {}
    key = COMPUTE_KEYS[name]
    if computes.get(key) is not None:
        where = f"system metadata '{SUPPORTED_COMPUTES}.{key}'"
        return _size_list(where, computes[key]), FROM_SYSTEM_METADATA
    if name in tags:
        return _size_list(f"model tag {name!r}", tags[name]), FROM_TAGS
    return None, None


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
    tags: Mapping[str, object], metadata: Mapping[str, object]
) -> tuple[str | None, str | None]:
    """``tasks.fineTuningTasks`` (chat-completion when listed), else the ``task`` tag."""
    tasks = (_metadata_object(metadata, TASKS) or {}).get(FINETUNE_TASKS)
    if tasks:
        listed = _parse(f"system metadata '{TASKS}.{FINETUNE_TASKS}'", tasks)
        if isinstance(listed, list) and all(isinstance(t, str) for t in listed) and listed:
            return (CHAT_COMPLETION if CHAT_COMPLETION in listed else listed[0]), (
                FROM_SYSTEM_METADATA
            )
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
    tags: Mapping[str, object], metadata: Mapping[str, object], archived: bool
) -> Deprecation:
    found = _metadata_object(metadata, DEPRECATION) or {}
    if found:
        dates = {
            name: _date(f"system metadata '{DEPRECATION}.{key}'", found[key])
            for name, (key, _) in DEPRECATION_KEYS.items()
            if found.get(key)
        }
        source: str | None = FROM_SYSTEM_METADATA
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
) -> ModelCard:
    """Build a ModelCard, raising TagError for any value the harness relies on that is
    malformed. ``system_metadata`` is the version's ``properties.system_metadata`` as sent."""
    metadata = dict(system_metadata or {})
    finetune, finetune_source = _allow_list(FINETUNE_ALLOW_LIST, tags, metadata)
    inference, inference_source = _allow_list(INFERENCE_ALLOW_LIST, tags, metadata)
    evaluation, _ = _allow_list(EVALUATION_ALLOW_LIST, tags, metadata)
    task, task_source = _task(tags, metadata)
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
        deprecation=_deprecation(tags, metadata, archived),
        system_metadata=metadata,
    )


def _today() -> date:
    return datetime.now(timezone.utc).date()


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
