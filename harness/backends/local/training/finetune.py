"""A LoRA (or full) fine-tune of an MLflow transformers model on chat JSON Lines, with TRL's
``SFTTrainer`` in one process or in each rank of a ``torchrun`` job.

Loads the foundation model, tokenises the prepared train/test files with their assistant
masks (``chat_data``), evaluates, trains, evaluates again, and rank 0 saves the merged model
(``merge_and_unload``) as an MLflow model, the output Azure's pipeline produces as
``mlflow_model_folder``. How the settings map onto TRL and peft is ``arguments``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.backends.local import mlflow_model
from harness.backends.local.job_files import JobSpec
from harness.backends.local.training import arguments, chat_data
from harness.backends.local.training.arguments import Machine, Plan
from harness.backends.local.training.metrics import MetricsCallback, MetricsLog
from harness.backends.local.training.parameters import TrainSettings, resolve, unused_note
from harness.errors import JobError

THROUGHPUT = ("train_tokens_per_second", "total_tokens")


def world_size() -> int:
    """The number of ranks (torchrun sets WORLD_SIZE; a lone process is one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def probe(device: str) -> Machine:
    """What this process can use: bf16 support and flash attention on a GPU, and whether
    transformers masks packed sequences apart for SDPA/eager."""
    import torch
    from transformers import masking_utils
    from transformers.utils.import_utils import (
        is_flash_attn_2_available,
        is_flash_attn_3_available,
    )

    cuda = device == "cuda"
    flash = [
        ("flash_attention_3", is_flash_attn_3_available()),
        ("flash_attention_2", is_flash_attn_2_available()),
    ]
    return Machine(
        device=device,
        bf16_supported=cuda and torch.cuda.is_bf16_supported(),
        flash_attention=tuple(name for name, ok in flash if ok and cuda),
        packed_masks=hasattr(masking_utils, "find_packed_sequence_indices"),
    )


def load(spec: JobSpec, p: Plan) -> tuple[Any, Any]:
    """(model, tokenizer) of the foundation model; the trainer places the model."""
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
    model = hf.AutoModelForCausalLM.from_pretrained(
        model_path, dtype=getattr(torch, p.weights_dtype), attn_implementation=p.attn_implementation
    )
    return model, tokenizer


def datasets(spec: JobSpec, s: TrainSettings, tokenizer: Any) -> tuple[Any, Any]:
    """The train and test rows, tokenised with their assistant masks and truncated."""
    limit = arguments.max_length(s, tokenizer.model_max_length)
    encode = chat_data.encoder(tokenizer)
    train = chat_data.dataset(Path(spec.train_file), encode, limit)
    if len(train) == 0:
        raise JobError(
            f"no training example in {spec.train_file} has an assistant token within "
            f"max_seq_length={s.max_seq_length}; raise max_seq_length or check the data"
        )
    test = chat_data.dataset(Path(spec.test_file), encode, limit)
    return train, (test if len(test) else None)


def trainer(
    spec: JobSpec, s: TrainSettings, p: Plan, log: MetricsLog | None, marks: dict[str, float]
) -> Any:
    """An ``SFTTrainer`` with LoRA (when asked) on the job's model and data; ``marks``
    collects when each start-up step ended (epoch seconds), for ``benchmarks/local_e2e.py``."""
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    marks["libraries_imported"] = time.time()
    model, tokenizer = load(spec, p)
    marks["model_loaded"] = time.time()
    train, test = datasets(spec, s, tokenizer)
    marks["data_tokenised"] = time.time()
    limit = arguments.max_length(s, tokenizer.model_max_length)
    output = str(Path(spec.job_dir) / "trainer")
    config = arguments.sft_config(s, p, spec.device, output, limit, world_size())
    sft = SFTTrainer(
        model=model,
        args=SFTConfig(**{**config, **({} if test is not None else {"eval_strategy": "no"})}),
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        peft_config=LoraConfig(**arguments.lora_config(s)) if s.lora else None,
        callbacks=[MetricsCallback(log, marks)],
    )
    sft.remove_callback(PrinterCallback)  # MetricsLog echoes every logged value already
    marks["trainer_built"] = time.time()
    return sft


def run(
    spec: JobSpec, log: MetricsLog | None, marks: dict[str, float] | None = None
) -> dict[str, float]:
    """The whole job on this rank; rank 0 (``log`` set) logs and writes the merged model."""
    marks = {} if marks is None else marks
    s, unused = resolve(spec.parameters)
    p = arguments.plan(s, probe(spec.device))
    if log is not None:
        if note := unused_note(unused):
            print(f"parameters {note}", flush=True)
        log.params({"device": spec.device, "processes": world_size(), **asdict(s), **asdict(p)})
    marks["settings_logged"] = time.time()
    sft = trainer(spec, s, p, log, marks)
    evaluating = sft.eval_dataset is not None and s.evaluation_strategy != "disable"
    if evaluating:
        sft.evaluate()  # eval_loss before training, at step 0
        marks["evaluated_before"] = time.time()
    result = sft.train()
    if evaluating and not _evaluated_last(sft):
        sft.evaluate()
    summary = _summary(sft, result.metrics)
    if log is not None:  # the trainer logged train_loss and train_runtime already
        log.log(sft.state.global_step, {k: summary[k] for k in THROUGHPUT})
        merged = sft.model.merge_and_unload() if s.lora else sft.model
        mlflow_model.save(merged.eval(), sft.processing_class, Path(spec.output_dir))
    return summary


def _evaluated_last(sft: Any) -> bool:
    step = sft.state.global_step
    return any("eval_loss" in e and e.get("step") == step for e in sft.state.log_history)


def _summary(sft: Any, metrics: dict[str, float]) -> dict[str, float]:
    """Throughput over training time only (evaluation excluded), in real (unpadded) tokens of
    every rank, as TRL counts them."""
    callback = next(c for c in sft.callback_handler.callbacks if isinstance(c, MetricsCallback))
    busy = max(1e-9, float(metrics["train_runtime"]) - callback.eval_seconds)
    tokens = max((float(e.get("num_tokens", 0)) for e in sft.state.log_history), default=0.0)
    return {
        "train_loss": float(metrics["train_loss"]),
        "train_runtime": float(metrics["train_runtime"]),
        "train_tokens_per_second": tokens / busy,
        "total_tokens": tokens,
    }
