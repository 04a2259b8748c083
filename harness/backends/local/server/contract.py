"""The chat-completion contract of the local endpoint: auth, size limit, validation, response.

Pure functions, so they are tested without a server or a model. The inference server has no
authentication and no size limit of its own: the scoring script enforces both, and validates
the body so that a malformed request gets a 4xx JSON answer instead of the server's 500.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.scoring import DEFAULT_PARAMETERS, conversation_problem

MAX_BODY_BYTES = 1_000_000
MAX_NEW_TOKENS = 2048
# The documented body is 5 containers deep (6 in the notebook's nested form): more is abuse.
MAX_DEPTH = 8
SHAPE = (
    '{"input_data": {"input_string": [{"role": "user", "content": "..."}], "parameters": {...}}}'
)


class RequestError(Exception):
    """A request the endpoint refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "status": self.status, "message": self.message}}


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


Generate = Callable[[ChatRequest], Generation]


def authorize(headers: Mapping[str, str], keys: Sequence[str]) -> None:
    """Accept ``Authorization: Bearer <key>`` for any endpoint key; 401 otherwise."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    valid = scheme.lower() == "bearer" and any(
        hmac.compare_digest(token.strip().encode(), key.encode()) for key in keys if key
    )
    if not valid:
        raise RequestError(
            401,
            "missing or invalid endpoint key; send 'Authorization: Bearer <key>' "
            "with a key of this endpoint",
        )


def check_size(content_length: int | None, body: bytes) -> None:
    """413 for a declared or actual size over the limit (chunked uploads declare none)."""
    if (content_length or 0) > MAX_BODY_BYTES or len(body) > MAX_BODY_BYTES:
        raise RequestError(
            413, f"request body larger than {MAX_BODY_BYTES} bytes; send a shorter conversation"
        )


def parse(body: bytes) -> ChatRequest:
    """The request's messages and generation parameters, or RequestError(400)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise RequestError(400, _too_deep()) from None
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, f"body is not JSON; send {SHAPE}") from None
    check_tree(data)
    input_data = data.get("input_data") if isinstance(data, dict) else None
    if not isinstance(input_data, dict):
        raise RequestError(400, f"body has no 'input_data' object; send {SHAPE}")
    return ChatRequest(
        messages(input_data.get("input_string")), parameters(input_data.get("parameters"))
    )


def _too_deep() -> str:
    return f"body nests deeper than {MAX_DEPTH} levels, more than any request; send {SHAPE}"


def check_tree(value: Any) -> None:
    """400 for a body nested deeper than a request can be, or holding a string that is not
    text (a lone surrogate such as \\ud800, which Python's json accepts and the tokenizer
    cannot encode). Iterative, so no body can exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise RequestError(400, _too_deep())
            children = [*item, *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            400,
            f"body holds a lone surrogate ({text[exc.start]!r}), which is not text; send "
            "valid Unicode: a high surrogate \\ud800-\\udbff must be followed by a low one "
            "\\udc00-\\udfff, or send the character as UTF-8",
        ) from None


def messages(value: Any) -> list[dict[str, str]]:
    """A flat list of messages ending with the user turn to answer, each with content.

    The notebook's form nests one conversation in one more list. The rule is the data
    check's (harness.scoring.conversation_problem), plus the last turn being the user's.
    """
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    problem = conversation_problem(value)
    if problem:
        raise RequestError(400, f"input_string: {problem}; send {SHAPE}")
    if value[-1]["role"] != "user":
        raise RequestError(
            400,
            f"the conversation ends with role {value[-1]['role']!r}; send it up to the user "
            "turn the model should answer, as the last message",
        )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def parameters(value: Any) -> dict[str, Any]:
    """Generation parameters over the defaults, each checked."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise RequestError(400, "'parameters' must be an object")
    unknown = sorted(set(value) - set(DEFAULT_PARAMETERS))
    if unknown:
        raise RequestError(
            400, f"unsupported parameters {unknown}; supported: {sorted(DEFAULT_PARAMETERS)}"
        )
    merged = {**DEFAULT_PARAMETERS, **value}
    _check(isinstance(merged["do_sample"], bool), "do_sample must be true or false")
    _check(
        _number(merged["temperature"]) and merged["temperature"] >= 0,
        "temperature must be a finite number >= 0",
    )
    _check(
        not merged["do_sample"] or merged["temperature"] > 0,
        "temperature must be > 0 when do_sample is true",
    )
    _check(
        _number(merged["top_p"]) and 0 < merged["top_p"] <= 1,
        "top_p must be a finite number in (0, 1]",
    )
    _check(
        isinstance(merged["max_new_tokens"], int)
        and not isinstance(merged["max_new_tokens"], bool)
        and 1 <= merged["max_new_tokens"] <= MAX_NEW_TOKENS,
        f"max_new_tokens must be an integer in [1, {MAX_NEW_TOKENS}]",
    )
    return merged


def _number(value: Any) -> bool:
    """A finite JSON number (Python's json also reads NaN, Infinity and 1e999 as floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RequestError(
            400,
            f"invalid parameters: {message}; send values in range (defaults: "
            f"{json.dumps(dict(DEFAULT_PARAMETERS))})",
        )


def response(generation: Generation) -> dict[str, Any]:
    usage = {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }
    return {"output": generation.text, "finish_reason": generation.finish_reason, "usage": usage}


def handle(
    method: str,
    headers: Mapping[str, str],
    read_body: Callable[[int], bytes],
    content_length: int | None,
    keys: Sequence[str],
    generate: Generate,
) -> tuple[int, dict[str, Any]]:
    """One scoring request: (HTTP status, JSON body).

    Auth comes first and the body is read only after it, at most one byte over the limit, so
    neither an unauthenticated nor an oversized upload is ever held in memory.
    """
    try:
        authorize(headers, keys)
        if method != "POST":
            raise RequestError(405, f"{method} is not supported; POST the request to /score")
        check_size(content_length, b"")
        body = read_body(MAX_BODY_BYTES + 1)
        check_size(None, body)
        return 200, response(generate(parse(body)))
    except RequestError as refused:
        return refused.status, refused.body()
