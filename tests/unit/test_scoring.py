"""Scoring requests and every reply shape of azureml-facts.md section 10."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.errors import ScoringError
from harness.scoring import DEFAULT_PARAMETERS, ScoringResult, build_request, parse_response

MESSAGES = [
    {"role": "user", "content": "What is the capital of France?"},
]
FULL: dict[str, Any] = {
    "output": "Paris.",
    "message": {"role": "assistant", "content": "Paris."},
    "finish_reason": "stop",
    "usage": {"prompt_tokens": 9, "completion_tokens": 2},
    "model": "phi-3",
    "id": "cmpl-1",
}


def test_build_request_flat_documented_form() -> None:
    request = build_request(MESSAGES)
    assert request == {
        "input_data": {
            "input_string": MESSAGES,
            "parameters": {
                "temperature": 0.6,
                "top_p": 0.9,
                "do_sample": True,
                "max_new_tokens": 200,
            },
        }
    }
    assert request["input_data"]["input_string"][0] is not MESSAGES[0]  # copied
    json.dumps(request)


def test_build_request_nested_and_parameters() -> None:
    request = build_request(MESSAGES, {"max_new_tokens": 8}, nested=True)
    data = request["input_data"]
    assert data["input_string"] == [MESSAGES]
    assert data["parameters"] == {**DEFAULT_PARAMETERS, "max_new_tokens": 8}
    assert DEFAULT_PARAMETERS["max_new_tokens"] == 200  # defaults untouched


def as_json_string(value: Any) -> str:
    """A scoring script that returned json.dumps(...): the body is a JSON string of JSON."""
    return json.dumps(json.dumps(value))


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"output": "Paris."}),
        json.dumps(FULL),
        json.dumps([{"0": "Paris."}]),
        json.dumps(["Paris."]),
        json.dumps({"message": {"role": "assistant", "content": "Paris."}}),
        as_json_string({"output": "Paris."}),
        as_json_string(FULL),
        as_json_string([{"0": "Paris."}]),
        as_json_string(["Paris."]),
        json.dumps("Paris."),
        json.dumps({"output": "Paris."}).encode(),
    ],
)
def test_success_shapes(body: str | bytes) -> None:
    result = parse_response(body)
    assert result.text == "Paris."


def test_full_shape_metadata() -> None:
    result = parse_response(json.dumps(FULL), 200)
    assert result == ScoringResult(
        text="Paris.", finish_reason="stop", usage=FULL["usage"], raw=FULL
    )
    plain = parse_response('{"output": "x"}')
    assert (plain.finish_reason, plain.usage, plain.raw) == (None, None, {"output": "x"})


@pytest.mark.parametrize(
    "body, status, reason",
    [
        ('{"error": "CUDA out of memory", "exception": "Traceback ..."}', 200, "reports an error"),
        (
            '{"output": null, "error": {"status_code": 500, "body": "boom"}}',
            200,
            "reports an error",
        ),
        ('{"output": "text", "error": "also failed"}', 200, "reports an error"),
        ('[{"error": "bad row"}]', 200, "reports an error"),
        ("{}", 200, "holds no generated text"),
        ("[]", 200, "holds no generated text"),
        ('{"output": ""}', 200, "holds no generated text"),
        ('{"output": "   "}', 200, "holds no generated text"),
        ('{"output": 42}', 200, "holds no generated text"),
        ('[{"1": "x"}]', 200, "holds no generated text"),
        (
            '{"error": {"code": "UserError", "message": "bad input", "status": 422}}',
            422,
            "is not a success",
        ),
        (
            '{"error": {"code": "InternalError", "message": "crash", "status": 500}}',
            500,
            "is not a success",
        ),
        ('{"output": "fine"}', 502, "is not a success"),
        ("<html>Bad Gateway</html>", 200, "is not JSON"),
        ("", 200, "is empty"),
        ("  \n", 200, "is empty"),
        (b"", 200, "is empty"),
        (as_json_string({"error": "x"}), 200, "reports an error"),
    ],
)
def test_failure_shapes(body: str | bytes, status: int, reason: str) -> None:
    with pytest.raises(ScoringError) as err:
        parse_response(body, status)
    message = str(err.value)
    assert reason in message
    assert f"HTTP {status}" in message
    shown = body.decode() if isinstance(body, bytes) else body
    assert repr(shown) in message


def test_long_body_is_truncated() -> None:
    body = json.dumps({"error": "x" * 10_000})
    with pytest.raises(ScoringError) as err:
        parse_response(body, 200)
    message = str(err.value)
    assert len(message) < 2500
    assert "characters in all" in message
    assert body[:100] in message


def test_undecodable_bytes_do_not_crash() -> None:
    with pytest.raises(ScoringError, match="is not JSON"):
        parse_response(b"\xff\xfe\x00garbage", 200)
