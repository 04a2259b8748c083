"""Chat conversations -> token ids and the assistant mask, the way the chat template lays them out.

TRL turns the mask into labels (-100 outside assistant turns) and batches the rows; this module
only decides where each assistant turn is, in this order:

1. the tokenizer's template has ``{% generation %}`` markers (the tiny model's does):
   ``apply_chat_template(..., return_assistant_tokens_mask=True)``;
2. TRL ships a training variant of the template with markers (Phi-3, Phi-3.5, Llama 3, Qwen,
   Gemma, ...: ``trl.chat_template_utils.get_training_chat_template``): the same call with it;
3. any other template: each assistant turn is the difference between the conversation rendered
   up to its generation prompt and rendered through the turn (right for templates whose
   rendering of earlier turns does not change when a turn is added, as chat templates do).

Rows are truncated to the job's length limit here (so every batch layout, padded or padding-free,
sees the same tokens), and a row left without an assistant token is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
Messages = Sequence[dict[str, str]]
Encoder = Callable[[Messages], tuple[list[int], list[int]]]
Patcher = Callable[[Any], "str | None"]


def read_conversations(path: Path) -> list[list[dict[str, str]]]:
    """The ``messages`` of each row of a JSON Lines file written by ``harness.data.prepare``."""
    with path.open(encoding="utf-8") as rows:
        return [json.loads(line)["messages"] for line in rows if line.strip()]


def training_template(tokenizer: Any, patcher: Patcher | None = None) -> str | None:
    """A template with generation markers for ``tokenizer``: its own, TRL's training variant of
    it, or None when neither exists (the prefix-difference rule applies)."""
    own = tokenizer.chat_template or ""
    if GENERATION_MARKER.search(own):
        return str(own)
    try:
        return (patcher or _trl_training_template)(tokenizer)
    except ValueError:  # TRL has no training variant of this template
        return None


def _trl_training_template(tokenizer: Any) -> str | None:
    from trl.chat_template_utils import get_training_chat_template

    return get_training_chat_template(tokenizer)


def encoder(tokenizer: Any, patcher: Patcher | None = None) -> Encoder:
    """The function giving (token ids, assistant mask) of one conversation."""
    template = training_template(tokenizer, patcher)
    if template is None:
        return lambda messages: _prefix_mask(tokenizer, messages)

    def marked(messages: Messages) -> tuple[list[int], list[int]]:
        out = tokenizer.apply_chat_template(
            list(messages),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            chat_template=template,
        )
        return list(out["input_ids"]), list(out["assistant_masks"])

    return marked


def _prefix_mask(tokenizer: Any, messages: Messages) -> tuple[list[int], list[int]]:
    ids = _render(tokenizer, messages, False)
    mask = [0] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            start = len(_render(tokenizer, messages[:i], True)) if i else 0
            end = min(len(_render(tokenizer, messages[: i + 1], False)), len(ids))
            mask[start:end] = [1] * (end - start)
    return ids, mask


def _render(tokenizer: Any, messages: Messages, prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, return_dict=True, add_generation_prompt=prompt
    )
    return list(out["input_ids"])


def rows(
    conversations: Sequence[Messages], encode: Encoder, limit: int
) -> list[dict[str, list[int]]]:
    """``input_ids`` and ``assistant_masks`` per conversation, truncated to ``limit`` tokens;
    conversations left without an assistant token are dropped."""
    found = []
    for conversation in conversations:
        ids, mask = encode(conversation)
        if any(mask[:limit]):
            found.append({"input_ids": ids[:limit], "assistant_masks": mask[:limit]})
    return found


def dataset(path: Path, encode: Encoder, limit: int) -> Any:
    """The rows of a prepared JSON Lines file as an in-memory ``datasets.Dataset``."""
    from datasets import Dataset

    return Dataset.from_list(rows(read_conversations(path), encode, limit))
