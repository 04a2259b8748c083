"""The job's settings and the machine it runs on, mapped onto TRL's ``SFTConfig`` and peft's
``LoraConfig`` keyword arguments.

Plain values in, plain dictionaries out (no torch import), so the whole mapping is tested
without a model. The rules for a GPU box live here too:

- precision 16 trains with bf16 autocast where the GPU supports it, else fp16; a LoRA job
  loads the frozen base weights in that half type (its adapters stay float32). A CPU trains in
  float32 whatever the precision (CPU autocast would be slower, not faster).
- attention: flash attention on a GPU when it is installed (3 before 2), else PyTorch SDPA.
- padding-free batches (one row of concatenated conversations with position ids, no padding)
  only where the attention keeps the conversations apart: the flash kernels' variable-length
  path, or transformers' packed-sequence masks for SDPA/eager. ``auto`` turns it on with flash
  attention (its cost grows with each conversation's length) and on a CPU, where no padded
  tokens in the linear layers outweighs SDPA's block-diagonal mask over the flattened batch
  (measured on the tiny model: a step 0.76x the padded one, and TRL's padded step is 1.2x the
  plain Trainer's). On a GPU without flash attention, SDPA's cost grows with the whole batch's
  length squared, so batches stay padded unless ``padding_free=true``.
- packing (TRL's best-fit decreasing) is opt-in: it changes what a batch is, so the
  component's batch sizes would no longer mean what they mean on Azure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.backends.local.training.parameters import TrainSettings
from harness.errors import JobError

DEFAULT_MAX_LEN = 2048
EVAL_STRATEGY = {"epoch": "epoch", "steps": "steps", "disable": "no"}
FLASH = ("flash_attention_3", "flash_attention_2")


@dataclass(frozen=True)
class Machine:
    """What the job process found out about where it runs."""

    device: str  # "cpu" or "cuda"
    bf16_supported: bool = False
    flash_attention: tuple[str, ...] = ()  # installed flash implementations, best first
    packed_masks: bool = False  # transformers masks packed sequences apart for SDPA/eager


@dataclass(frozen=True)
class Plan:
    """How this job trains on this machine."""

    weights_dtype: str  # "float32", "bfloat16" or "float16"
    bf16: bool
    fp16: bool
    attn_implementation: str
    padding_free: bool
    packing: bool


def plan(s: TrainSettings, machine: Machine) -> Plan:
    """Precision, attention and batch layout for ``s`` on ``machine`` (JobError if impossible)."""
    cuda = machine.device == "cuda"
    half = cuda and s.precision == "16"
    bf16 = half and machine.bf16_supported
    fp16 = half and not bf16
    weights = "bfloat16" if bf16 else "float16" if fp16 else "float32"
    attention = _attention(s, machine)
    keeps_apart = attention in FLASH or (machine.packed_masks and attention in ("sdpa", "eager"))
    packing = s.packing == "true"
    wanted = {"true": True, "false": False}.get(s.padding_free, attention in FLASH or not cuda)
    if (packing or s.padding_free == "true") and not keeps_apart:
        raise JobError(
            f"packing and padding-free batches need an attention implementation that keeps the "
            f"conversations apart; {attention} does not with this transformers version; install "
            "flash-attn on a GPU, or set packing=false and padding_free=false"
        )
    return Plan(
        weights_dtype=weights if s.lora else "float32",  # full fine-tunes keep fp32 masters
        bf16=bf16,
        fp16=fp16,
        attn_implementation=attention,
        padding_free=packing or (wanted and keeps_apart),
        packing=packing,
    )


def _attention(s: TrainSettings, machine: Machine) -> str:
    if s.attn_implementation == "auto":
        return machine.flash_attention[0] if machine.flash_attention else "sdpa"
    if s.attn_implementation in FLASH and s.attn_implementation not in machine.flash_attention:
        raise JobError(
            f"attn_implementation={s.attn_implementation} is not available on this "
            f"{machine.device} (flash attention needs a CUDA GPU and the flash-attn package); "
            "set attn_implementation=auto"
        )
    return s.attn_implementation


def max_length(s: TrainSettings, model_max_length: int) -> int:
    """Tokens per conversation (and per packed row): max_seq_length, else the model's limit
    capped at DEFAULT_MAX_LEN."""
    return s.max_seq_length if s.max_seq_length > 0 else min(model_max_length, DEFAULT_MAX_LEN)


def sft_config(
    s: TrainSettings, p: Plan, device: str, output_dir: str, limit: int, processes: int = 1
) -> dict[str, Any]:
    """``SFTConfig`` keyword arguments. The data arrives tokenised and truncated to ``limit``
    with its assistant masks (``chat_data``), so TRL builds the labels and batches. Several
    processes on a CPU talk over gloo (a backend named for one process would make accelerate
    expect a process group)."""
    same = (
        "num_train_epochs",
        "max_steps",
        "learning_rate",
        "lr_scheduler_type",
        "warmup_steps",
        "weight_decay",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "optim",
        "max_grad_norm",
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "seed",
        "logging_strategy",
        "logging_steps",
        "eval_steps",
    )
    return {
        **{name: getattr(s, name) for name in same},
        "output_dir": output_dir,
        "eval_strategy": EVAL_STRATEGY[s.evaluation_strategy],
        "bf16": p.bf16,
        "fp16": p.fp16,
        "use_cpu": device == "cpu",
        "gradient_checkpointing": s.gradient_checkpointing == "true",
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "packing": p.packing,
        "packing_strategy": "bfd",
        "padding_free": p.padding_free,
        "max_length": limit if p.packing else None,  # TRL truncates only when packing
        "ddp_backend": "gloo" if device == "cpu" and processes > 1 else None,
        "ddp_find_unused_parameters": False,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
    }


def lora_config(s: TrainSettings) -> dict[str, Any]:
    """``LoraConfig`` keyword arguments."""
    return {
        "r": s.lora_r,
        "lora_alpha": s.lora_alpha,
        "lora_dropout": s.lora_dropout,
        "target_modules": s.lora_targets,
        "task_type": "CAUSAL_LM",
    }
