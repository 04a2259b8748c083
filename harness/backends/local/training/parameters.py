"""The fine-tune job's settings: the component's declared defaults under the given parameters.

The local job reads the same parameter names, types and defaults as Azure's
``chat_completion_pipeline``, so a parameter means the same thing on both backends. Parameters
the local job cannot honour (DeepSpeed, ORT, ...) are listed in the job log, never silently lost.
A few inputs exist only locally (``LOCAL_INPUTS``: packing, padding-free batches, attention
implementation, gradient checkpointing, LoRA target modules); they are declared like the
component's, so the same checks refuse a bad value before the job starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ParameterError
from harness.finetune_params import coerce, load_component_inputs

_SWITCH = {"type": "string", "default": "false", "optional": True, "enum": ["true", "false"]}
LOCAL_INPUTS: dict[str, dict[str, Any]] = {
    "gradient_checkpointing": {
        **_SWITCH,
        "description": "Recompute activations in the backward pass: less memory, more time.",
    },
    "packing": {
        **_SWITCH,
        "description": "Pack whole conversations into max_seq_length rows (TRL's best-fit "
        "decreasing): a batch is then per_device_train_batch_size rows, not conversations.",
    },
    "padding_free": {
        "type": "string",
        "default": "auto",
        "optional": True,
        "enum": ["auto", "true", "false"],
        "description": "Flatten each batch into one row with position ids instead of padding "
        "it; auto: with flash attention, and on a CPU.",
    },
    "attn_implementation": {
        "type": "string",
        "default": "auto",
        "optional": True,
        "enum": ["auto", "eager", "sdpa", "flash_attention_2", "flash_attention_3"],
        "description": "auto: flash attention on a GPU when it is installed, else SDPA.",
    },
    "lora_target_modules": {
        "type": "string",
        "default": "all-linear",
        "optional": True,
        "description": "Comma-separated module names for LoRA, or all-linear (every linear "
        "layer but the output head).",
    },
}

# Inputs that do not change what the local job does.
NOT_APPLICABLE = frozenset(
    {
        "apply_deepspeed",
        "deepspeed_stage",
        "apply_ort",
        "num_nodes_finetune",
        "save_total_limit",
        "shm_size_finetune",
        "merge_lora_weights",
        "task_name",
        "trust_remote_code",
        "dataloader_num_workers",
        "auto_find_batch_size",
        "enable_full_determinism",
        "resume_from_checkpoint",
        "ignore_mismatched_sizes",
        "pad_to_max_length",
        "batch_size",
        "metric_for_best_model",
        "eval_accumulation_steps",
        "evaluation_steps_interval",
        "apply_early_stopping",
        "early_stopping_patience",
        "early_stopping_threshold",
    }
)


@dataclass(frozen=True)
class TrainSettings:
    """Field names are the component's input names; values have the declared types."""

    num_train_epochs: int
    max_steps: int
    learning_rate: float
    lr_scheduler_type: str
    warmup_steps: int
    weight_decay: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    optim: str
    per_device_train_batch_size: int
    per_device_eval_batch_size: int
    gradient_accumulation_steps: int
    max_grad_norm: float
    apply_lora: str
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    seed: int
    logging_strategy: str
    logging_steps: int
    max_seq_length: int
    evaluation_strategy: str
    eval_steps: int
    precision: str
    gradient_checkpointing: str
    packing: str
    padding_free: str
    attn_implementation: str
    lora_target_modules: str

    @property
    def lora(self) -> bool:
        return self.apply_lora == "true"

    @property
    def lora_targets(self) -> str | list[str]:
        names = [n.strip() for n in self.lora_target_modules.split(",") if n.strip()]
        return names if names != ["all-linear"] else "all-linear"


def local_component_inputs() -> dict[str, dict[str, Any]]:
    """The component's inputs and the local job's own, as the local backend declares them."""
    return {**load_component_inputs(), **LOCAL_INPUTS}


def resolve(parameters: Mapping[str, Any]) -> tuple[TrainSettings, dict[str, Any]]:
    """Settings from ``parameters`` over the component's defaults, and the unused parameters."""
    inputs = local_component_inputs()
    values = {}
    for f in dataclasses.fields(TrainSettings):
        raw = parameters.get(f.name, inputs[f.name].get("default"))
        values[f.name] = coerce(f.name, raw, inputs[f.name])
    names = set(values)
    unused = {k: v for k, v in parameters.items() if k not in names}
    settings = TrainSettings(**values)
    if not settings.lora_targets:
        raise ParameterError(
            f"fine-tune parameter lora_target_modules={settings.lora_target_modules!r} names no "
            "module; pass comma-separated module names (e.g. qkv_proj,o_proj) or all-linear"
        )
    return settings, unused


def unused_note(unused: Mapping[str, Any]) -> str:
    """One log line naming the parameters the local job does not use, and why."""
    known = sorted(k for k in unused if k in NOT_APPLICABLE)
    other = sorted(k for k in unused if k not in NOT_APPLICABLE)
    parts = []
    if known:
        parts.append(f"not applicable to the local job: {', '.join(known)}")
    if other:
        parts.append(f"not used by the local job: {', '.join(other)}")
    return "; ".join(parts)
