"""The local quality gate's measure, on a small random Phi-3 and a copy trained on the references.

Marked ``e2e``, not ``unit``: importing torch and transformers and saving two MLflow models
takes about 10 s, more than the unit suite's whole budget. It runs with ``pytest -m e2e``.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import DataError

STEPS = 30


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A seeded random model (the "foundation") and the same model trained on the references."""
    torch = pytest.importorskip("torch")
    from harness.backends.local import mlflow_model
    from harness.backends.local.training import chat_data, tiny_model
    from harness.data import SHIPPED_DATASET

    root = tmp_path_factory.mktemp("likelihood")
    conversations = tiny_model.read_split(SHIPPED_DATASET, "test_gen")[:6]
    tokenizer = tiny_model.train_tokenizer(conversations)
    model = tiny_model.new_model(tokenizer)
    mlflow_model.save(model, tokenizer, root / "foundation")
    batch = _batch(torch, chat_data.encoder(tokenizer), conversations, tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(STEPS):
        model(**batch).loss.backward()
        optimizer.step(), optimizer.zero_grad()
    model.eval()
    with torch.inference_mode():
        own_loss = float(model(**batch).loss)
    mlflow_model.save(model, tokenizer, root / "finetuned")
    return {
        "root": root,
        "conversations": conversations,
        "own_loss": own_loss,
        "assistant_tokens": int((batch["labels"][:, 1:] != -100).sum()),
    }


def _batch(torch: Any, encode: Any, conversations: list[Any], pad: int) -> dict[str, Any]:
    """Right-padded input ids, attention mask and labels (-100 outside assistant turns)."""
    rows = [encode(conversation) for conversation in conversations]
    width = max(len(ids) for ids, _ in rows)
    ids = [ids + [pad] * (width - len(ids)) for ids, _ in rows]
    attention = [[1] * len(i) + [0] * (width - len(i)) for i, _ in rows]
    labels = [
        [t if m else -100 for t, m in zip(i, mask, strict=True)] + [-100] * (width - len(i))
        for i, mask in rows
    ]
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(attention),
        "labels": torch.tensor(labels),
    }


def test_training_on_the_references_raises_their_likelihood(models: dict[str, Any]) -> None:
    from harness.backends.local.likelihood import compare_models

    root = models["root"]
    result = compare_models(root / "foundation", root / "finetuned", models["conversations"])
    assert result.improved
    assert result.foundation.mean < result.finetuned.mean < 0
    assert result.foundation.tokens == result.finetuned.tokens
    names = [f["name"] for f in result.figures()]
    assert names == ["log_likelihood_foundation", "log_likelihood_finetuned"]


def test_the_mean_is_the_negative_training_loss_over_assistant_tokens(
    models: dict[str, Any],
) -> None:
    """Same masking and shift as the fine-tune job: the trainer's loss, negated."""
    from harness.backends.local.likelihood import reference_likelihood

    result = reference_likelihood(
        models["root"] / "finetuned", models["conversations"], max_len=256
    )
    # HF shifts labels by one: the first token of a conversation is never predicted
    assert result.tokens == models["assistant_tokens"]
    assert result.mean == pytest.approx(-models["own_loss"], rel=1e-4)
    assert result.conversations == len(models["conversations"])


def test_conversations_without_an_assistant_turn_are_refused(models: dict[str, Any]) -> None:
    from harness.backends.local.likelihood import reference_likelihood

    with pytest.raises(DataError, match="assistant"):
        reference_likelihood(
            models["root"] / "foundation", [[{"role": "user", "content": "hello"}]]
        )
