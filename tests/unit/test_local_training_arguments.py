"""The job's parameters and machine, mapped onto TRL's SFTConfig and peft's LoraConfig."""

from __future__ import annotations

from typing import Any

import pytest

from harness.backends.local.training import arguments
from harness.backends.local.training.arguments import Machine
from harness.backends.local.training.parameters import TrainSettings, resolve
from harness.backends.local.training.tiny_model import TINY_MODEL_DEFAULTS
from harness.errors import JobError, ParameterError

CPU = Machine("cpu", packed_masks=True)
H100 = Machine(
    "cuda", bf16_supported=True, flash_attention=("flash_attention_2",), packed_masks=True
)
V100 = Machine("cuda", bf16_supported=False, packed_masks=True)


def settings(**parameters: Any) -> TrainSettings:
    return resolve({**TINY_MODEL_DEFAULTS, **parameters})[0]


def test_every_listed_parameter_reaches_sftconfig_under_its_trainer_name() -> None:
    s = settings(
        num_train_epochs=2,
        max_steps=-1,
        learning_rate=1e-4,
        lr_scheduler_type="linear",
        warmup_steps=5,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=2,
        gradient_accumulation_steps=3,
        seed=7,
        logging_steps=5,
        eval_steps=20,
        evaluation_strategy="steps",
        gradient_checkpointing="true",
        optim="adafactor",
        weight_decay=0.1,
        max_grad_norm=0.5,
    )
    config = arguments.sft_config(s, arguments.plan(s, CPU), "cpu", "/out", 256)
    assert {
        k: config[k]
        for k in (
            "num_train_epochs",
            "max_steps",
            "learning_rate",
            "lr_scheduler_type",
            "warmup_steps",
            "seed",
        )
    } == {
        "num_train_epochs": 2,
        "max_steps": -1,
        "learning_rate": 1e-4,
        "lr_scheduler_type": "linear",
        "warmup_steps": 5,
        "seed": 7,
    }
    assert (
        config["per_device_train_batch_size"],
        config["per_device_eval_batch_size"],
        config["gradient_accumulation_steps"],
    ) == (4, 2, 3)
    assert (config["logging_steps"], config["eval_steps"], config["eval_strategy"]) == (
        5,
        20,
        "steps",
    )
    assert config["gradient_checkpointing"] and config["optim"] == "adafactor"
    assert (config["weight_decay"], config["max_grad_norm"]) == (0.1, 0.5)
    assert config["use_cpu"] and config["ddp_backend"] is None
    ranks = arguments.sft_config(s, arguments.plan(s, CPU), "cpu", "/out", 256, processes=2)
    assert ranks["ddp_backend"] == "gloo" and not ranks["ddp_find_unused_parameters"]
    assert config["save_strategy"] == "no" and config["report_to"] == []


def test_disable_means_no_evaluation_and_the_length_limit_applies_when_packing() -> None:
    s = settings(evaluation_strategy="disable", packing="true", max_seq_length=128)
    config = arguments.sft_config(s, arguments.plan(s, CPU), "cpu", "/out", 128)
    assert config["eval_strategy"] == "no"
    assert config["packing"] and config["padding_free"] and config["max_length"] == 128
    unpacked = settings()
    assert (
        arguments.sft_config(unpacked, arguments.plan(unpacked, CPU), "cpu", "/o", 256)[
            "max_length"
        ]
        is None
    )  # rows arrive truncated


def test_lora_settings_map_onto_loraconfig() -> None:
    assert arguments.lora_config(settings(lora_r=4, lora_alpha=8, lora_dropout=0.1)) == {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.1,
        "target_modules": "all-linear",
        "task_type": "CAUSAL_LM",
    }
    named = settings(lora_target_modules="qkv_proj, o_proj")
    assert arguments.lora_config(named)["target_modules"] == ["qkv_proj", "o_proj"]
    with pytest.raises(ParameterError, match="lora_target_modules"):
        settings(lora_target_modules=" , ")


def test_the_length_limit_is_max_seq_length_else_the_models_capped() -> None:
    assert arguments.max_length(settings(max_seq_length=100), 4096) == 100
    assert arguments.max_length(settings(max_seq_length=-1), 4096) == arguments.DEFAULT_MAX_LEN
    assert arguments.max_length(settings(max_seq_length=-1), 512) == 512


def test_a_cpu_trains_in_float32_with_sdpa_and_padding_free_batches() -> None:
    p = arguments.plan(settings(precision="16"), CPU)
    assert (p.weights_dtype, p.bf16, p.fp16) == ("float32", False, False)
    assert (p.attn_implementation, p.padding_free, p.packing) == ("sdpa", True, False)
    assert not arguments.plan(settings(padding_free="false"), CPU).padding_free
    old = arguments.plan(settings(), Machine("cpu", packed_masks=False))
    assert not old.padding_free  # transformers could not keep the conversations apart


def test_a_gpu_uses_bf16_and_flash_attention_without_padding_when_it_can() -> None:
    p = arguments.plan(settings(precision="16"), H100)
    assert (p.weights_dtype, p.bf16, p.fp16) == ("bfloat16", True, False)
    assert (p.attn_implementation, p.padding_free) == ("flash_attention_2", True)
    full = arguments.plan(settings(precision="16", apply_lora="false"), H100)
    assert full.weights_dtype == "float32" and full.bf16  # trained weights keep fp32 masters


def test_a_gpu_without_bf16_uses_fp16_and_sdpa_keeps_padding_unless_asked() -> None:
    p = arguments.plan(settings(precision="16"), V100)
    assert (p.weights_dtype, p.bf16, p.fp16) == ("float16", False, True)
    assert (p.attn_implementation, p.padding_free) == ("sdpa", False)
    forced = arguments.plan(settings(precision="16", padding_free="true"), V100)
    assert forced.padding_free  # transformers masks the flattened conversations apart
    assert not arguments.plan(settings(precision="32"), V100).fp16


def test_packing_needs_attention_that_keeps_conversations_apart() -> None:
    old = Machine("cpu", packed_masks=False)
    with pytest.raises(JobError, match="keeps the conversations apart"):
        arguments.plan(settings(packing="true"), old)
    with pytest.raises(JobError, match="padding_free=false"):
        arguments.plan(settings(padding_free="true", attn_implementation="eager"), old)
    assert arguments.plan(settings(packing="true"), H100).packing


def test_flash_attention_is_refused_where_it_is_not_installed() -> None:
    with pytest.raises(JobError, match="attn_implementation=auto"):
        arguments.plan(settings(attn_implementation="flash_attention_2"), CPU)
    chosen = arguments.plan(settings(attn_implementation="eager"), H100)
    assert chosen.attn_implementation == "eager" and not chosen.padding_free
