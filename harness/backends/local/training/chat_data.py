"""Chat conversations -> token ids and labels, the way the chat template lays them out.

Labels are -100 outside assistant turns: the loss counts only what the model should say,
found through the template's ``{% generation %}`` markers (``return_assistant_tokens_mask``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE = -100
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def read_conversations(path: Path) -> list[list[dict[str, str]]]:
    """The ``messages`` of each row of a JSON Lines file written by ``harness.data.prepare``."""
    with path.open(encoding="utf-8") as rows:
        return [json.loads(line)["messages"] for line in rows if line.strip()]


def encode(
    tokenizer: Any, messages: Sequence[dict[str, str]], max_len: int, all_tokens: bool = False
) -> Example:
    """Tokenise one conversation with the chat template, truncated to ``max_len`` tokens."""
    ids, mask = ids_and_mask(tokenizer, messages)
    ids, mask = ids[:max_len], mask[:max_len]
    labels = ids if all_tokens else [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]
    return Example(ids, list(labels))


def ids_and_mask(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids and the assistant mask, from the template's markers when it has them."""
    if GENERATION_MARKER.search(tokenizer.chat_template or ""):
        out = tokenizer.apply_chat_template(
            list(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        return list(out["input_ids"]), list(out["assistant_masks"])
    return _prefix_mask(tokenizer, messages)


def _prefix_mask(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Templates without ``{% generation %}`` (e.g. Phi-3-mini's): each assistant turn is the
    difference between the conversation rendered up to it and rendered through it."""
    ids = _render(tokenizer, messages, False)
    mask = [0] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            start = len(_render(tokenizer, messages[:i], True)) if i else 0
            end = len(_render(tokenizer, messages[: i + 1], False))
            mask[start:end] = [1] * (min(end, len(ids)) - start)
    return ids, mask


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, return_dict=True, add_generation_prompt=prompt
    )
    return list(out["input_ids"])


def encode_all(
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_len: int,
    all_tokens: bool = False,
) -> list[Example]:
    """Encoded conversations that still hold a trained token after truncation."""
    examples = (encode(tokenizer, conv, max_len, all_tokens) for conv in conversations)
    return [ex for ex in examples if ex.trained_tokens > 0]


def batches(examples: Sequence[Example], size: int, seed: int | None) -> Iterator[list[Example]]:
    """Batches of ``size``, shuffled with ``seed`` (None keeps the order, for evaluation)."""
    order = list(range(len(examples)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    for start in range(0, len(order), size):
        yield [examples[i] for i in order[start : start + size]]


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for one batch: input_ids, attention_mask, labels."""
    import torch

    width = max(len(ex.input_ids) for ex in batch)
    ids = [ex.input_ids + [pad_id] * (width - len(ex.input_ids)) for ex in batch]
    mask = [[1] * len(ex.input_ids) + [0] * (width - len(ex.input_ids)) for ex in batch]
    labels = [ex.labels + [IGNORE] * (width - len(ex.labels)) for ex in batch]
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }
