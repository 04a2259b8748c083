"""Chat-completion scoring requests, and replies in every shape the real containers send.

Serving containers disagree on the reply's shape (a dict, records, a list, any of them wrapped
in a JSON string) and some report errors with HTTP 200, so a reply counts as a success only when
it holds non-empty text and no ``error`` key, whatever its status code says. What a chat
conversation must hold to be sent (or trained on) is judged here too, in one rule.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from harness.errors import ScoringError

# The chat roles and the notebook's generation parameters: the harness sends them, the local
# endpoint's scoring contract accepts them (harness/backends/local/server/contract.py).
ROLES = ("assistant", "system", "user")
DEFAULT_PARAMETERS: Mapping[str, Any] = MappingProxyType(
    {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200}
)

_BODY_CHARS = 2000
_MAX_WRAPPING = 4  # a JSON string holding JSON, at most this deep


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def describe(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str) and not value.strip():
        return "empty"
    return f"{type(value).__name__} {short(value)}"


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, Mapping):
        return f"is {describe(message)}; expected an object with role and content"
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        return f"role is {short(role)}; expected one of {', '.join(ROLES)}"
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        return f"content is {describe(content)}; expected a non-empty string"
    return None


def conversation_problem(messages: Any) -> str | None:
    """Why a list of chat messages cannot train or prompt a chat model, or None when it can.

    The training data's rows (``harness.data``) and the local endpoint's requests
    (``backends/local/server/contract.py``) are judged by this one rule.
    """
    if not isinstance(messages, list | tuple) or not messages:
        return f"messages is {describe(messages)}; expected a non-empty list"
    for index, message in enumerate(messages):
        problem = _message_problem(message)
        if problem:
            return f"message {index} {problem}"
    if not any(message["role"] == "user" for message in messages):
        return "no message has role 'user'; expected at least one user turn"
    return None


@dataclass(frozen=True)
class ScoringResult:
    text: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    raw: Any


def build_request(
    messages: Sequence[Mapping[str, str]],
    parameters: Mapping[str, Any] | None = None,
    nested: bool = False,
) -> dict[str, Any]:
    """The documented flat request; ``nested`` reproduces the notebook's extra list."""
    conversation = [dict(m) for m in messages]
    return {
        "input_data": {
            "input_string": [conversation] if nested else conversation,
            "parameters": {**DEFAULT_PARAMETERS, **(parameters or {})},
        }
    }


def _shown(text: str) -> str:
    if len(text) <= _BODY_CHARS:
        return text
    return f"{text[:_BODY_CHARS]}... ({len(text)} characters in all)"


def _failure(reason: str, text: str, status_code: int) -> ScoringError:
    return ScoringError(
        f"scoring reply (HTTP {status_code}) {reason}; body: {_shown(text)!r}; "
        "check the deployment's logs and the request it was sent"
    )


def _decode(body: str | bytes) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _unwrap(text: str) -> Any:
    """Parse the body, then any JSON string that itself holds JSON (scripts that json.dumps)."""
    value: Any = json.loads(text)
    for _ in range(_MAX_WRAPPING):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break  # a plain string: the reply text itself
    return value


def _has_error(value: Any) -> bool:
    if isinstance(value, dict):
        return "error" in value
    if isinstance(value, list):
        return any(isinstance(item, dict) and "error" in item for item in value)
    return False


def _text_of(value: Any) -> Any:
    """The generated text in whichever shape it came; None when there is none."""
    if isinstance(value, list):
        return _text_of(value[0]) if value else None
    if isinstance(value, dict):
        if "output" in value:
            return value["output"]
        if "0" in value:
            return value["0"]
        message = value.get("message")
        return message.get("content") if isinstance(message, dict) else None
    return value


def _result(value: Any, text: str) -> ScoringResult:
    meta = value if isinstance(value, dict) else {}
    finish_reason = meta.get("finish_reason")
    usage = meta.get("usage")
    return ScoringResult(
        text=text,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        usage=usage if isinstance(usage, dict) else None,
        raw=value,
    )


def parse_response(body: str | bytes, status_code: int = 200) -> ScoringResult:
    """Generated text and metadata, or ScoringError showing the status and the body."""
    text = _decode(body)
    if not 200 <= status_code < 300:
        raise _failure("is not a success", text, status_code)
    if not text.strip():
        raise _failure("is empty", text, status_code)
    try:
        value = _unwrap(text)
    except (ValueError, RecursionError):
        raise _failure("is not JSON", text, status_code) from None
    if _has_error(value):
        raise _failure("reports an error", text, status_code)
    generated = _text_of(value)
    if not isinstance(generated, str) or not generated.strip():
        raise _failure("holds no generated text", text, status_code)
    return _result(value, generated)


@dataclass(frozen=True)
class Sample:
    """One scored test_gen conversation: what was asked and expected, what came back, how fast.

    ``answer`` is the parsed text when the reply parsed, ``error`` why not (an HTTP error, an
    ``error`` body, no reply at all): a failed sample keeps its status and body for the report.
    """

    index: int
    prompt: list[dict[str, str]]
    reference: str | None
    status_code: int
    body: str
    latency_s: float
    answer: str = ""
    error: str = ""


@dataclass(frozen=True)
class Samples:
    """Every scored sample of a run, shareable between pytest-xdist workers."""

    items: tuple[Sample, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"items": [dataclasses.asdict(sample) for sample in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Samples:
        return cls(tuple(Sample(**item) for item in data["items"]))


def report_fields(sample: Sample) -> dict[str, Any]:
    """A sample as the run report's ``sample`` event (the score is computed there)."""
    fields: dict[str, Any] = {
        "index": sample.index,
        "prompt": sample.prompt,
        "status": "error" if sample.error else "ok",
        "latency_s": sample.latency_s,
        "answer": sample.answer,
    }
    if sample.reference is not None:
        fields["reference"] = sample.reference
    if sample.error:
        fields["error"] = f"HTTP {sample.status_code}: {sample.error}"
    return fields
