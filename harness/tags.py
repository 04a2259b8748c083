"""Model tags as the registry stores them -> a typed ModelCard.

The registry keeps every tag value as a string: lists as Python reprs, dicts as JSON, and older
assets use either form. Parsing them once, strictly, here means a malformed tag is reported
with its name and text before any resource is created, instead of as a confusing failure later.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import TagError

FINETUNE_ALLOW_LIST = "finetune_compute_allow_list"
INFERENCE_ALLOW_LIST = "inference_compute_allow_list"
EVALUATION_ALLOW_LIST = "evaluation_compute_allow_list"
MODEL_SPECIFIC_DEFAULTS = "model_specific_defaults"
TASK = "task"

_SHOWN_CHARS = 300


@dataclass(frozen=True)
class ModelCard:
    """What the harness needs to know about a foundation model, already validated."""

    name: str
    version: str
    id: str
    finetune_allow_list: tuple[str, ...] | None
    inference_allow_list: tuple[str, ...] | None
    evaluation_allow_list: tuple[str, ...] | None
    model_specific_defaults: Mapping[str, Any] = field(default_factory=dict)
    task: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``name:version``, the way error messages name the model."""
        return f"{self.name}:{self.version}"

    def report_fields(self) -> dict[str, Any]:
        """What the run report says of the model (its ``model`` event)."""
        return {"name": self.name, "version": self.version, "id": self.id,
                "finetune_allow_list": list(self.finetune_allow_list or []),
                "inference_allow_list": list(self.inference_allow_list or []),
                "allow_list_source": "tags"}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values, so the card can cross processes (pytest-xdist)."""
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Rebuild from ``to_dict`` by parsing the raw tags again: one source of truth."""
        return model_card(data["name"], data["version"], data["id"], data.get("tags", {}))


def _shown(text: str) -> str:
    """The bad text, cut so that a huge tag does not drown the message."""
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


def parse_tag(name: str, value: object) -> Any:
    """Parse one structured tag (a list or dict) from either string form; never ``eval``.

    A value that is not a string was already parsed by whoever read the registry and is
    returned unchanged.
    """
    if not isinstance(value, str):
        return value
    for parse in (_literal, _json):
        ok, parsed = parse(value)
        if ok:
            return parsed
    raise TagError(
        f"model tag {name!r} is neither a Python literal nor JSON: {_shown(value)}; "
        "fix the tag on the model in the registry or pick another model version"
    )


def _allow_list(name: str, tags: Mapping[str, object]) -> tuple[str, ...] | None:
    if name not in tags:
        return None
    parsed = parse_tag(name, tags[name])
    if not isinstance(parsed, (list, tuple)) or not all(isinstance(x, str) for x in parsed):
        raise TagError(
            f"model tag {name!r} must be a list of VM size names, found "
            f"{type(parsed).__name__}: {_shown(encode_tag(tags[name]))}; fix the tag on the model"
        )
    return tuple(parsed)


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


def _task(tags: Mapping[str, object]) -> str | None:
    value = tags.get(TASK)
    if value is None or isinstance(value, str):
        return value
    raise TagError(
        f"model tag {TASK!r} must be a string, found {type(value).__name__}: "
        f"{_shown(encode_tag(value))}; fix the tag on the model"
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


def model_card(name: str, version: str, id: str, tags: Mapping[str, object]) -> ModelCard:
    """Build a ModelCard, raising TagError for any tag the harness relies on that is malformed."""
    return ModelCard(
        name=name,
        version=version,
        id=id,
        finetune_allow_list=_allow_list(FINETUNE_ALLOW_LIST, tags),
        inference_allow_list=_allow_list(INFERENCE_ALLOW_LIST, tags),
        evaluation_allow_list=_allow_list(EVALUATION_ALLOW_LIST, tags),
        model_specific_defaults=_defaults(tags),
        task=_task(tags),
        tags={k: encode_tag(v) for k, v in tags.items()},
    )
