"""Fine-tune parameters: the notebook's merge, fitted to what the pipeline component accepts.

azure-ai-ml rejects unknown keyword inputs (``UnexpectedKeywordError``) and the registry's
``model_specific_defaults`` now carry keys that are not inputs (learning_rate_min/max), so the
merged parameters are filtered to the component's inputs and coerced to the declared types.
Nothing is dropped silently: the plan reports every key it left out, and a key the user typed
that is no input is an error naming the closest one (a typo would otherwise train with the
default and pass). Values the trainer would reject an hour later are refused here.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from harness.errors import ParameterError

if TYPE_CHECKING:
    from harness.model_card import ModelCard

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
    {
        "compute_model_import",
        "compute_preprocess",
        "compute_finetune",
        "compute_model_evaluation",
        "number_of_gpu_to_use_finetuning",
    }
)
_WHERE = "--finetune-param (or the model's model_specific_defaults tag)"
logger = logging.getLogger("harness")


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric input; an open end excludes its value."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, number: float) -> bool:
        low_ok = self.low is None or (number > self.low if self.low_open else number >= self.low)
        high_ok = self.high is None or (
            number < self.high if self.high_open else number <= self.high
        )
        return low_ok and high_ok

    def text(self) -> str:
        low = f"{'above' if self.low_open else 'at least'} {self.low}"
        high = f"{'below' if self.high_open else 'at most'} {self.high}"
        return " and ".join(
            part for part, end in ((low, self.low), (high, self.high)) if end is not None
        )


# Where the component declares no bound: what its trainer refuses at run time (torch's AdamW
# and Dropout, peft's LoRA rank, transformers' TrainingArguments, numpy's seed range) or what
# cannot train at all (a zero learning rate, zero accumulation steps).
TRAINER_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        "learning_rate": Bounds(low=0, low_open=True),
        "lora_r": Bounds(low=1),
        "lora_alpha": Bounds(low=1),
        "lora_dropout": Bounds(low=0, high=1, high_open=True),
        "adam_beta1": Bounds(low=0, high=1, high_open=True),
        "adam_beta2": Bounds(low=0, high=1, high_open=True),
        "adam_epsilon": Bounds(low=0),
        "weight_decay": Bounds(low=0),
        "max_grad_norm": Bounds(low=0),
        "gradient_accumulation_steps": Bounds(low=1),
        "warmup_steps": Bounds(low=0),
        "logging_steps": Bounds(low=1),
        "eval_steps": Bounds(low=1),
        "seed": Bounds(low=0, high=2**32 - 1),
        "dataloader_num_workers": Bounds(low=0),
    }
)


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


def bounds(name: str, spec: Mapping[str, Any]) -> Bounds:
    """The component's declared min/max, each side falling back to the trainer's rule."""
    rule = TRAINER_BOUNDS.get(name, Bounds())
    low, high = spec.get("min"), spec.get("max")
    return Bounds(
        low=rule.low if low is None else _limit(low),
        high=rule.high if high is None else _limit(high),
        low_open=rule.low_open if low is None else False,
        high_open=rule.high_open if high is None else False,
    )


def _limit(value: Any) -> float:
    """A declared limit as a number; 1.0 prints as 1 in messages."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _check_bounds(name: str, value: object, number: float, spec: Mapping[str, Any]) -> None:
    allowed = bounds(name, spec)
    if not allowed.allows(number):
        raise _fail(name, value, allowed.text())


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


def plan_parameters(
    card: ModelCard,
    overrides: Mapping[str, str],
    inputs: Mapping[str, Mapping[str, Any]],
    allow_dropped: bool = False,
) -> ParameterPlan:
    """The run's parameters: merged, the user's own keys checked by name, fitted and checked.

    Keys from the model's own defaults that are no input are dropped and reported; the user's
    are an error unless ``allow_dropped``.
    """
    if not allow_dropped:
        check_override_names(overrides, inputs)
    plan = fit_to_component(merge_parameters(card, overrides), inputs)
    if plan.dropped:
        logger.info(
            "fine-tune parameters not sent (no input of the component, or None): %s",
            ", ".join(f"{k}={v!r}" for k, v in plan.dropped.items()),
        )
    return plan


def settable_inputs(inputs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The inputs a user may set: not an asset, not wired from the compute."""
    return sorted(
        name
        for name, spec in inputs.items()
        if name not in WIRED_INPUTS and spec.get("type") not in ASSET_TYPES
    )


def check_override_names(
    overrides: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]]
) -> None:
    """A key the user typed that is no input: ParameterError naming the closest input."""
    unknown = [name for name in overrides if name not in inputs]
    if not unknown:
        return
    valid = settable_inputs(inputs)
    hints = {name: difflib.get_close_matches(name.lower(), valid, n=1) for name in unknown}
    named = ", ".join(
        f"{name} (did you mean {close[0]}?)" if close else f"{name} (no input is close)"
        for name, close in hints.items()
    )
    listing = "" if all(hints.values()) else f"; valid inputs: {', '.join(valid)}"
    verb = "is not an input" if len(unknown) == 1 else "are not inputs"
    raise ParameterError(
        f"fine-tune parameter {named} {verb} of the pipeline component{listing}; "
        "fix the name in --finetune-param, or pass --allow-dropped-params "
        "(HARNESS_ALLOW_DROPPED_PARAMS=1) to drop parameters the component does not take"
    )


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
