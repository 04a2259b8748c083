"""Names and defaults of the local backend, in one place so tests and the CLI agree.

The local SKU names stand in for Azure VM sizes: the model's allow-list tags list them, so the
same allow-list checks that guard Azure runs guard local runs too.
"""

from __future__ import annotations

import json

DEFAULT_MODEL_NAME = "Phi-3-tiny-ultrachat"
LOCAL_CPU = "Local_CPU"
LOCAL_GPU = "Local_GPU"
LOCAL_SKUS = (LOCAL_CPU, LOCAL_GPU)
FOUNDATION_EXPERIMENT = "harness-foundation-models"
FINETUNED_SUFFIX = "-ultrachat-200k"
TAG_JOB_NAME = "harness-job-name"
TAG_KIND = "harness-kind"
TAG_RECIPE = "harness-recipe"
KEYS_ENV = "HARNESS_ENDPOINT_KEYS"  # the scoring script's endpoint keys (never logged)
DEVICE_ENV = "HARNESS_DEVICE"

# Tuned so that the CPU run is quick (60 optimizer steps of a 0.8M-parameter model, ~5 s) while
# the training and evaluation losses still drop clearly (loss windows of 80 samples).
TINY_MODEL_DEFAULTS: dict[str, object] = {
    "apply_lora": "true",
    "apply_deepspeed": "false",
    "precision": 32,
    "num_train_epochs": 1,
    "max_steps": 60,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "learning_rate": 4e-3,
    "lr_scheduler_type": "cosine",
    "logging_strategy": "steps",
    "logging_steps": 10,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "max_seq_length": 256,
    "save_total_limit": 1,
}


def tiny_model_tags(recipe: str = "") -> dict[str, str]:
    """The tiny model's tags in the registry's string format (lists as reprs, dicts as JSON)."""
    return {
        TAG_RECIPE: recipe,
        "finetune_compute_allow_list": repr(list(LOCAL_SKUS)),
        "inference_compute_allow_list": repr(list(LOCAL_SKUS)),
        "model_specific_defaults": json.dumps(TINY_MODEL_DEFAULTS),
        "task": "chat-completion",
        TAG_KIND: "foundation",
    }
