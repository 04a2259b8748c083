"""Chat conversations to training rows: the assistant mask, whatever the chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.backends.local.training import chat_data

CONVERSATION = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "yo"},
    {"role": "user", "content": "ok"},
    {"role": "assistant", "content": "bye"},
]
MARKED = "{% generation %}...{% endgeneration %}"


class CharTokenizer:
    """One token per character of a Phi-3-like rendering: '<u>hi|<a>yo|...'. Only a template
    with generation markers (its own or the one passed) yields the assistant mask."""

    def __init__(self, template: str) -> None:
        self.chat_template = template
        self.templates_used: list[str | None] = []

    def apply_chat_template(
        self,
        messages: Sequence[dict[str, str]],
        tokenize: bool = True,
        return_dict: bool = True,
        add_generation_prompt: bool = False,
        return_assistant_tokens_mask: bool = False,
        chat_template: str | None = None,
    ) -> dict[str, Any]:
        self.templates_used.append(chat_template)
        ids: list[int] = []
        mask: list[int] = []
        for m in messages:
            header, body = f"<{m['role'][0]}>", f"{m['content']}|"
            ids += [ord(c) for c in header + body]
            mask += [0] * len(header) + [int(m["role"] == "assistant")] * len(body)
        if add_generation_prompt:
            ids += [ord(c) for c in "<a>"]
            mask += [0, 0, 0]
        template = chat_template or self.chat_template
        if return_assistant_tokens_mask and not chat_data.GENERATION_MARKER.search(template):
            raise AssertionError("asked for an assistant mask from a template without markers")
        return {"input_ids": ids, "assistant_masks": mask}


def no_variant(tokenizer: Any) -> str | None:
    raise ValueError("no training variant of this template")


def trained_text(row: dict[str, list[int]]) -> str:
    return "".join(
        chr(t) for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True) if m
    )


def encode(
    tokenizer: CharTokenizer, patcher: Any = no_variant, limit: int = 1000
) -> list[dict[str, list[int]]]:
    return chat_data.rows([CONVERSATION], chat_data.encoder(tokenizer, patcher), limit)


def test_a_template_with_generation_markers_gives_the_mask_itself() -> None:
    tokenizer = CharTokenizer(MARKED)
    assert trained_text(encode(tokenizer)[0]) == "yo|bye|"
    assert tokenizer.templates_used == [MARKED]


def test_trls_training_variant_replaces_a_known_template_without_markers() -> None:
    tokenizer = CharTokenizer("phi-3 as shipped")
    [row] = encode(tokenizer, patcher=lambda tok: "{%- generation %}phi-3 for training")
    assert trained_text(row) == "yo|bye|"
    assert tokenizer.templates_used == ["{%- generation %}phi-3 for training"]


def test_an_unknown_template_without_markers_falls_back_to_prefix_differences() -> None:
    tokenizer = CharTokenizer("some model's own template")
    [row] = encode(tokenizer)
    assert trained_text(row) == "yo|bye|"
    assert len(row["input_ids"]) == len(row["assistant_masks"])
    assert None in tokenizer.templates_used  # rendered with the tokenizer's own template


def test_rows_are_truncated_and_rows_without_an_assistant_token_are_dropped() -> None:
    encode_ = chat_data.encoder(CharTokenizer(MARKED), no_variant)
    rows = chat_data.rows([CONVERSATION, CONVERSATION[:1]], encode_, 10)
    assert [trained_text(row) for row in rows] == ["y"]
    assert len(rows[0]["input_ids"]) == 10


def test_conversations_are_read_from_the_prepared_json_lines(tmp_path: Any) -> None:
    import json

    path = tmp_path / "train_sft.jsonl"
    path.write_text(json.dumps({"prompt": "hi", "messages": CONVERSATION}) + "\n\n")
    assert chat_data.read_conversations(path) == [CONVERSATION]
