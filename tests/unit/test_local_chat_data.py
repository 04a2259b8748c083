"""Chat conversations to training examples: loss only on what the assistant says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from harness.backends.local.training import chat_data
from harness.backends.local.training.chat_data import IGNORE

pytestmark = pytest.mark.unit

CONVERSATION = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "ok"}, {"role": "assistant", "content": "bye"}]


class CharTokenizer:
    """One token per character of a Phi-3-like rendering: '<u>hi|<a>yo|...'."""

    def __init__(self, markers: bool) -> None:
        self.chat_template = "{% generation %}...{% endgeneration %}" if markers else "plain"

    def apply_chat_template(self, messages: Sequence[dict[str, str]], tokenize: bool = True,
                            return_dict: bool = True, add_generation_prompt: bool = False,
                            return_assistant_tokens_mask: bool = False) -> dict[str, Any]:
        ids: list[int] = []
        mask: list[int] = []
        for m in messages:
            header, body = f"<{m['role'][0]}>", f"{m['content']}|"
            ids += [ord(c) for c in header + body]
            mask += [0] * len(header) + [int(m["role"] == "assistant")] * len(body)
        if add_generation_prompt:
            ids += [ord(c) for c in "<a>"]
            mask += [0, 0, 0]
        return {"input_ids": ids, "assistant_masks": mask}


def trained_text(example: chat_data.Example) -> str:
    return "".join(chr(t) for t in example.labels if t != IGNORE)


@pytest.mark.parametrize("markers", [True, False])
def test_only_assistant_turns_are_trained_with_or_without_generation_markers(markers: bool
                                                                              ) -> None:
    example = chat_data.encode(CharTokenizer(markers), CONVERSATION, max_len=1000)
    assert trained_text(example) == "yo|bye|"
    assert len(example.input_ids) == len(example.labels)


def test_all_tokens_are_trained_for_pre_training() -> None:
    example = chat_data.encode(CharTokenizer(True), CONVERSATION, max_len=1000, all_tokens=True)
    assert example.labels == example.input_ids


def test_examples_without_an_assistant_token_after_truncation_are_dropped() -> None:
    examples = chat_data.encode_all(CharTokenizer(True), [CONVERSATION, CONVERSATION[:1]], 10)
    assert [trained_text(e) for e in examples] == ["y"]


def test_batches_are_shuffled_by_seed_and_padded_on_the_right() -> None:
    examples = [chat_data.Example([i] * (i + 1), [i] * (i + 1)) for i in range(5)]
    plain = [[e.input_ids[0] for e in batch] for batch in chat_data.batches(examples, 2, None)]
    assert plain == [[0, 1], [2, 3], [4]]
    shuffled = [[e.input_ids[0] for e in b] for b in chat_data.batches(examples, 2, 7)]
    assert sorted(i for batch in shuffled for i in batch) == [0, 1, 2, 3, 4]
    assert shuffled == [[e.input_ids[0] for e in b] for b in chat_data.batches(examples, 2, 7)]
