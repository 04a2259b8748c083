"""The default foundation model: a tiny Phi-3-architecture chat model built from the shipped data.

No hub download is possible or wanted, so the model is built here: a byte-level BPE tokenizer,
Phi-3's chat template (with ``{% generation %}`` markers for assistant-only loss), a randomly
initialised ``Phi3ForCausalLM`` and a short full-parameter pre-training so that it answers in
sentences of the data's shape. Everything is seeded: same seed, same weights. The harness
builds it once per machine (``harness.backends.local.model_cache``), keyed by the hash of this
file, the modules it calls, the data and the library versions: any edit here rebuilds it.

Pre-training uses train_gen only: the fine-tune job trains on train_sft and evaluates on
test_sft, and a base that had already memorised train_sft would show no eval-loss gain (measured:
4.540 -> 4.541), which is the harness's quality gate. 150 steps keep the one-time build near
10-20 s on two cores; factually right answers would need about ten times more (600 steps, 42 s,
still mixes facts up).

Run as ``python -m harness.backends.local.training.tiny_model --dataset DIR --out MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backends.local import mlflow_model
from harness.backends.local.training import chat_data

SEED = 1234
VOCAB_SIZE = 1024
MAX_POSITIONS = 2048
PRETRAIN_STEPS = 150
PRETRAIN_BATCH = 8
PRETRAIN_LR = 3e-3
MAX_LEN = 256
PRETRAIN_SPLITS = ("train_gen",)
HIDDEN, INTERMEDIATE, LAYERS, HEADS = 128, 512, 2, 4
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
EOS, END = "<|endoftext|>", "<|end|>"
SPECIAL_TOKENS = (EOS, "<|system|>", "<|user|>", "<|assistant|>", END)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '<|assistant|>\n' }}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def read_split(dataset_dir: Path, split: str) -> list[list[dict[str, str]]]:
    """Conversations of one split of a dataset directory in the hub layout (parquet files)."""
    import pyarrow.parquet as pq

    files = sorted((dataset_dir / "data").glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {split}-*.parquet under {dataset_dir / 'data'}")
    rows = [row for f in files for row in pq.read_table(f, columns=["messages"]).to_pylist()]
    return [list(row["messages"]) for row in rows]


def train_tokenizer(conversations: Sequence[Sequence[dict[str, str]]]) -> Any:
    """A byte-level BPE tokenizer with Phi-3's special tokens and chat template."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf: Any = transformers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator((m["content"] for conv in conversations for m in conv), trainer)
    tokenizer = hf.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS,
        pad_token=EOS,
        model_max_length=MAX_POSITIONS,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def new_model(tokenizer: Any) -> Any:
    """A randomly initialised (seeded) Phi-3 causal LM sized for a CPU."""
    import torch
    import transformers

    hf: Any = transformers

    eos_ids = [tokenizer.convert_tokens_to_ids(END), tokenizer.eos_token_id]
    config = hf.Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=eos_ids,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = hf.Phi3ForCausalLM(config)
    model.generation_config = hf.GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, max_new_tokens=200
    )
    return model


def pretrain(
    model: Any, tokenizer: Any, conversations: Sequence[Sequence[dict[str, str]]]
) -> list[float]:
    """Short full-parameter language-model training on every token, with the same trainer as
    the fine-tune job (TRL's ``SFTTrainer``, padding-free rows, on the CPU so the build is the
    same everywhere); returns the loss of each step."""
    import tempfile

    from datasets import Dataset
    from transformers import PrinterCallback
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    encode = chat_data.encoder(tokenizer)
    rows = Dataset.from_list([{"input_ids": encode(conv)[0][:MAX_LEN]} for conv in conversations])
    with tempfile.TemporaryDirectory(prefix="tiny-model-") as scratch:
        config = SFTConfig(
            output_dir=scratch,
            max_steps=PRETRAIN_STEPS,
            per_device_train_batch_size=PRETRAIN_BATCH,
            learning_rate=PRETRAIN_LR,
            lr_scheduler_type="cosine",
            warmup_steps=10,
            weight_decay=0.0,
            max_grad_norm=1.0,
            seed=SEED,
            logging_steps=1,
            padding_free=True,
            max_length=None,
            bf16=False,
            fp16=False,
            use_cpu=True,
            gradient_checkpointing=False,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=rows, processing_class=tokenizer
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]


def build(dataset_dir: Path, out: Path) -> dict[str, Any]:
    """Build, pre-train and save the tiny model as an MLflow model at ``out``."""
    import torch

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor with NaN to expose reads of uninitialised
    # memory; TRL's chunked loss allocates large buffers, and the filling cost 10 % of the build.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    conversations = [conv for split in PRETRAIN_SPLITS for conv in read_split(dataset_dir, split)]
    tokenizer = train_tokenizer(conversations)
    model = new_model(tokenizer)
    losses = pretrain(model, tokenizer, conversations)
    model.eval()
    mlflow_model.save(model, tokenizer, out)
    params = sum(p.numel() for p in model.parameters())
    return {
        "parameters": params,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "steps": len(losses),
        "conversations": len(conversations),
    }


def main(argv: Sequence[str] | None = None) -> None:
    from harness.backends.local.offline import set_offline

    set_offline()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = build(args.dataset, args.out)
    print(json.dumps(summary), flush=True)
    if not math.isfinite(summary["last_loss"]):
        raise SystemExit(f"pre-training diverged: {summary}")


if __name__ == "__main__":
    main()
