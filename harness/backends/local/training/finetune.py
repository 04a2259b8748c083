"""A LoRA (or full) fine-tune of an MLflow transformers model on chat JSON Lines.

Loads the foundation model, encodes the prepared train/test files with the chat template,
trains with ``loop.Loop`` and saves the merged model (``merge_and_unload``) as an MLflow model,
the output Azure's pipeline produces as ``mlflow_model_folder``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.backends.local import mlflow_model
from harness.backends.local.job_files import JobSpec
from harness.backends.local.training import chat_data
from harness.backends.local.training.loop import Loop
from harness.backends.local.training.metrics import MetricsLog
from harness.backends.local.training.parameters import TrainSettings, resolve, unused_note
from harness.errors import JobError

DEFAULT_MAX_LEN = 2048


def load(spec: JobSpec, s: TrainSettings) -> tuple[Any, Any]:
    """(model on the job's device, tokenizer) of the foundation model."""
    import torch
    import transformers

    hf: Any = transformers  # partly typed; the model classes are dynamic

    model_path, tokenizer_path = mlflow_model.hf_paths(Path(spec.model_dir))
    tokenizer = hf.AutoTokenizer.from_pretrained(tokenizer_path)
    if not tokenizer.chat_template:
        raise JobError(
            f"the tokenizer at {tokenizer_path} has no chat template; a chat-completion "
            "fine-tune needs one; register a model whose tokenizer defines it"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    half = spec.device == "cuda" and s.precision == "16" and torch.cuda.is_bf16_supported()
    model = hf.AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.bfloat16 if half else torch.float32
    )
    return model.to(spec.device), tokenizer


def with_lora(model: Any, s: TrainSettings) -> Any:
    """LoRA adapters on every linear layer but the output head (peft's "all-linear")."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    peft_model.print_trainable_parameters()
    return peft_model


def examples(tokenizer: Any, path: str, s: TrainSettings) -> list[chat_data.Example]:
    limit = (
        s.max_seq_length
        if s.max_seq_length > 0
        else min(tokenizer.model_max_length, DEFAULT_MAX_LEN)
    )
    return chat_data.encode_all(tokenizer, chat_data.read_conversations(Path(path)), limit)


def run(spec: JobSpec, log: MetricsLog) -> dict[str, float]:
    """The whole job: settings, model, data, training, merged MLflow model at ``output_dir``."""
    import torch

    s, unused = resolve(spec.parameters)
    if note := unused_note(unused):
        print(f"parameters {note}", flush=True)
    log.params({"device": spec.device, **asdict(s)})
    torch.manual_seed(s.seed)
    model, tokenizer = load(spec, s)
    train, test = examples(tokenizer, spec.train_file, s), examples(tokenizer, spec.test_file, s)
    if not train:
        raise JobError(
            f"no training example in {spec.train_file} has an assistant token within "
            f"max_seq_length={s.max_seq_length}; raise max_seq_length or check the data"
        )
    print(f"examples: train {len(train)}, test {len(test)}", flush=True)
    model = with_lora(model, s) if s.lora else model
    summary = Loop(model, s, log, tokenizer.pad_token_id, spec.device).run(train, test)
    merged = model.merge_and_unload() if s.lora else model
    mlflow_model.save(merged.eval(), tokenizer, Path(spec.output_dir))
    return summary
