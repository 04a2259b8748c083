"""Fine-tune parameters: the notebook's merge, fitted to what the pipeline component accepts.

azure-ai-ml rejects unknown keyword inputs (``UnexpectedKeywordError``) and the registry's
``model_specific_defaults`` now carry keys that are not inputs (learning_rate_min/max), so the
merged parameters are filtered to the component's inputs and coerced to the declared types.
Nothing is dropped silently: the plan reports every key it left out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.errors import ParameterError
from harness.tags import ModelCard

NOTEBOOK_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "num_train_epochs": 3,
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "learning_rate": 5e-6,
        "lr_scheduler_type": "cosine",
        "apply_lora": "true",
        "apply_deepspeed": "true",
        "deepspeed_stage": 2,
    }
)

COMPONENT_INPUTS_FILE = Path(__file__).parent / "resources" / "chat_completion_pipeline.inputs.json"

# Inputs of these types are assets the backend wires itself (model, data files, configs).
ASSET_TYPES = frozenset(
    {"uri_file", "uri_folder", "mlflow_model", "custom_model", "mltable", "triton_model"}
)
# Inputs the backend sets from the compute it checked; a parameter must not contradict them.
WIRED_INPUTS = frozenset(
    {"compute_model_import", "compute_preprocess", "compute_finetune",
     "compute_model_evaluation", "number_of_gpu_to_use_finetuning"}
)
_WHERE = "--finetune-param (or the model's model_specific_defaults tag)"


@dataclass(frozen=True)
class ParameterPlan:
    """Parameters ready to pass to the component, and what was left out and why it was."""

    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: dict[str, Any] = field(default_factory=dict)


def merge_parameters(card: ModelCard, overrides: Mapping[str, str]) -> dict[str, Any]:
    """Notebook defaults < the model's own defaults < the user's overrides."""
    return {**NOTEBOOK_DEFAULTS, **card.model_specific_defaults, **overrides}


def load_component_inputs(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The ``inputs`` of a pipeline component spec; default: the shipped chat_completion copy."""
    source = path or COMPONENT_INPUTS_FILE
    try:
        spec = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError(
            f"cannot read component inputs from {source}: {exc}; pass a JSON file with an "
            "'inputs' mapping like harness/resources/chat_completion_pipeline.inputs.json"
        ) from exc
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    if not isinstance(inputs, dict) or not all(isinstance(v, dict) for v in inputs.values()):
        raise ParameterError(
            f"{source} has no 'inputs' mapping of input name to spec; pass a file shaped like "
            "harness/resources/chat_completion_pipeline.inputs.json"
        )
    return inputs


def _fail(name: str, value: object, expected: str) -> ParameterError:
    return ParameterError(
        f"fine-tune parameter {name}={value!r} is not valid: expected {expected}; fix {_WHERE}"
    )


def _to_number(name: str, value: object, expected: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(name, value, expected)
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, value, expected) from None
    if not math.isfinite(number):
        raise _fail(name, value, f"a finite value, {expected}")
    return number


def _to_integer(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value.strip())
    number = _to_number(name, value, "an integer")
    if not number.is_integer():
        raise _fail(name, value, "an integer")
    return int(number)


def _to_string(name: str, value: object, enum: list[Any] | None) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise _fail(name, value, "a string")
    allowed = [str(x) for x in enum or []]
    if allowed and text not in allowed:
        raise _fail(name, value, f"one of {', '.join(allowed)}")
    return text


def _to_boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise _fail(name, value, "true or false")


def _check_bounds(name: str, value: object, number: float, spec: Mapping[str, Any]) -> None:
    low, high = spec.get("min"), spec.get("max")
    if low is not None and number < float(low):
        raise _fail(name, value, f"at least {low}")
    if high is not None and number > float(high):
        raise _fail(name, value, f"at most {high}")


def coerce(name: str, value: object, spec: Mapping[str, Any]) -> Any:
    """One value converted to its declared input type, enum and bounds checked."""
    kind = spec.get("type")
    if name in WIRED_INPUTS:
        raise ParameterError(
            f"fine-tune parameter {name} is set by the harness from the checked compute "
            f"(--compute-name and its GPU count); remove {name} from {_WHERE}"
        )
    if kind in ASSET_TYPES:
        raise ParameterError(
            f"fine-tune parameter {name} is a {kind} input that the harness wires itself "
            f"(model, data or config files), not a parameter; remove {name} from {_WHERE}"
        )
    result: Any
    if kind == "integer":
        result = _to_integer(name, value)
    elif kind == "number":
        result = _to_number(name, value)
    elif kind == "string":
        return _to_string(name, value, spec.get("enum"))
    elif kind == "boolean":
        return _to_boolean(name, value)
    else:
        raise ParameterError(
            f"component input {name} has type {kind!r}, which the harness cannot set; "
            f"remove {name} from {_WHERE}"
        )
    _check_bounds(name, value, result, spec)
    return result


def fit_to_component(
    params: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]]
) -> ParameterPlan:
    """Keep the component's inputs, coerced; return the rest as ``dropped``.

    A ``None`` value means "the component's default" and is dropped rather than sent.
    """
    kept: dict[str, Any] = {}
    dropped: dict[str, Any] = {}
    for name, value in params.items():
        if name not in inputs or value is None:
            dropped[name] = value
        else:
            kept[name] = coerce(name, value, inputs[name])
    return ParameterPlan(parameters=kept, dropped=dropped)


def _flag(value: object) -> bool:
    return value is True or value == "true"


def _count(params: Mapping[str, Any], name: str) -> int:
    return _to_integer(name, params.get(name, 1))


def display_name(model_name: str, params: Mapping[str, Any], gpus_per_node: int) -> str:
    """The pipeline's display name, built exactly as the notebook builds it."""
    batch_size = (
        _count(params, "per_device_train_batch_size")
        * _count(params, "gradient_accumulation_steps")
        * int(gpus_per_node)
        * _count(params, "num_nodes_finetune")
    )
    scheduler = params.get("lr_scheduler_type", "linear")
    deepspeed = _flag(params.get("apply_deepspeed", "false"))
    ds = f"ds{params.get('deepspeed_stage', '2')}" if deepspeed else "nods"
    lora = "lora" if _flag(params.get("apply_lora")) else "nolora"
    save_limit = params.get("save_total_limit", -1)
    seq_len = params.get("max_seq_length", -1)
    return (
        f"{model_name}-ultrachat-bs{batch_size}-{scheduler}-{ds}-{lora}"
        f"-save_limit{save_limit}-seqlen{seq_len}"
    )
