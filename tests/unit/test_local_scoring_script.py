"""The local endpoint's scoring contract: key auth, size limit, validation, response shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import data
from harness.backends.local.server import contract
from harness.backends.local.server.contract import ChatRequest, Generation, handle
from harness.scoring import build_request

KEY = "the-endpoint-key"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


class FakeModel:
    """Stands in for the generator: records what it was asked, answers a fixed text."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def __call__(self, request: ChatRequest) -> Generation:
        self.requests.append(request)
        return Generation("The capital of France is Paris.", "stop", 12, 8)


def call(
    body: Any,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    length: int | None = None,
) -> tuple[int, dict[str, Any], FakeModel]:
    model = FakeModel()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Authorization": f"Bearer {KEY}"} if headers is None else headers
    status, payload = handle(method, sent, lambda n: raw[:n], length, [KEY, "second"], model)
    return status, payload, model


def request(messages: Any = MESSAGES, **parameters: Any) -> dict[str, Any]:
    return {"input_data": {"input_string": messages, "parameters": parameters}}


def test_a_valid_request_gets_the_answer_with_finish_reason_and_usage() -> None:
    status, payload, model = call(request(temperature=0.2, max_new_tokens=5, do_sample=True))
    assert status == 200
    assert payload == {
        "output": "The capital of France is Paris.",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }
    assert model.requests[0].messages == MESSAGES
    assert model.requests[0].parameters == {
        "temperature": 0.2,
        "top_p": 0.9,
        "do_sample": True,
        "max_new_tokens": 5,
    }


def test_the_notebooks_nested_form_is_accepted() -> None:
    status, _, model = call(request([MESSAGES]))
    assert status == 200 and model.requests[0].messages == MESSAGES


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},
        {"Authorization": f"Basic {KEY}"},
    ],
)
def test_without_the_key_the_answer_is_401_and_the_model_is_not_called(
    headers: dict[str, str],
) -> None:
    status, payload, model = call(request(), headers=headers)
    assert status == 401 and "Bearer" in payload["error"]["message"]
    assert KEY not in json.dumps(payload) and not model.requests


def test_the_secondary_key_and_any_header_case_work() -> None:
    assert call(request(), headers={"authorization": "bearer second"})[0] == 200


def test_oversized_bodies_are_refused_with_413_declared_or_not() -> None:
    big = b"x" * (contract.MAX_BODY_BYTES + 1)
    assert call(request(), length=contract.MAX_BODY_BYTES + 1)[0] == 413
    assert call(big)[0] == 413


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        ({"inputs": []}, "input_data"),
        (request([]), "non-empty list"),
        (request([{"role": "robot", "content": "hi"}]), "message 0"),
        (request([{"role": "user", "content": 5}]), "message 0"),
        (request(seed=3), "unsupported parameters"),
        (request(temperature=0, do_sample=True), "temperature"),
        (request(top_p=1.5), "top_p"),
        (request(max_new_tokens=0), "max_new_tokens"),
        (request(max_new_tokens=True), "max_new_tokens"),
        (request(do_sample="yes"), "do_sample"),
    ],
)
def test_malformed_requests_get_400_json_naming_the_problem(body: Any, fragment: str) -> None:
    status, payload, model = call(body)
    assert status == 400 and fragment in payload["error"]["message"]
    assert not model.requests


DEEP = b'{"input_data": {"input_string": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
LONE_SURROGATE = b'{"input_data": {"input_string": [{"role": "user", "content": "hi \\ud800"}]}}'
SYSTEM = {"role": "system", "content": "Be brief."}
ANSWER = {"role": "assistant", "content": "Paris."}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (LONE_SURROGATE, "surrogate"),
        (b'{"input_data": {"parameters": {"\\udfff": 1}, "input_string": []}}', "surrogate"),
        (DEEP, "nest"),
        (request([[[[[[MESSAGES]]]]]]), "nest"),
        (request([*MESSAGES, ANSWER]), "ends with role 'assistant'"),
        (request([SYSTEM]), "no message has role 'user'"),
        (request([SYSTEM, ANSWER]), "no message has role 'user'"),
        (request([{"role": "user", "content": "  "}]), "message 0 content is empty"),
        (request([SYSTEM, {"role": "user", "content": ""}]), "message 1 content is empty"),
        (
            b'{"input_data": {"input_string": [{"role": "user", "content": "hi"}], '
            b'"parameters": {"temperature": NaN}}}',
            "temperature must be a finite number",
        ),
        (
            b'{"input_data": {"input_string": [{"role": "user", "content": "hi"}], '
            b'"parameters": {"temperature": Infinity}}}',
            "temperature must be a finite number",
        ),
        (
            b'{"input_data": {"input_string": [{"role": "user", "content": "hi"}], '
            b'"parameters": {"top_p": 1e999}}}',
            "top_p must be a finite number",
        ),
    ],
)
def test_requests_the_model_cannot_answer_get_400_saying_what_to_send(
    body: Any, fragment: str
) -> None:
    status, payload, model = call(body)
    assert status == 400, payload
    message = payload["error"]["message"]
    assert fragment in message and "send" in message
    assert not model.requests
    json.dumps(payload, ensure_ascii=False).encode()  # the answer itself is valid UTF-8


def test_the_harness_own_scoring_requests_are_accepted(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = pq.read_table(data.SHIPPED_DATASET / "data" / "test_gen-00000-of-00001.parquet")
    path = tmp_path / "test_gen.jsonl"
    data.write_jsonl(path, rows.to_pylist())
    prepared = data.PreparedData(str(tmp_path), {"test_gen": str(path)}, {"test_gen": 1})
    samples = data.scoring_samples(prepared, 20)
    for nested in (False, True):
        for messages in samples:
            status, payload, model = call(build_request(messages, nested=nested))
            assert status == 200, payload
            assert model.requests[0].messages == messages


def test_greedy_decoding_accepts_temperature_zero() -> None:
    assert call(request(temperature=0, do_sample=False))[0] == 200


def test_only_post_is_served() -> None:
    assert call(request(), method="GET")[0] == 405


def test_the_script_answers_through_the_inference_servers_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from harness.backends.local.server import score

    monkeypatch.setattr(score, "_state", {"keys": [KEY], "generate": FakeModel()})
    environ = EnvironBuilder(
        method="POST", json=request(), headers=[("Authorization", f"Bearer {KEY}")]
    ).get_environ()
    response = score.run(Request(environ))
    assert response.status_code == 200
    assert json.loads(response.get_data())["output"].endswith("Paris.")


def test_the_script_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends.local.server import KEYS_ENV, score

    monkeypatch.delenv(KEYS_ENV, raising=False)
    with pytest.raises(RuntimeError, match="HARNESS_ENDPOINT_KEYS"):
        score.init()


def test_the_launcher_binds_the_unchanged_server_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from azureml_inference_server_http import amlserver

    from harness.backends.local.server import __main__ as launcher

    seen: dict[str, Any] = {}
    monkeypatch.setattr(amlserver, "DEFAULT_HOST", amlserver.DEFAULT_HOST)  # restored afterwards
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(
        amlserver, "run", lambda: seen.update(host=amlserver.DEFAULT_HOST, argv=list(sys.argv))
    )
    assert launcher.main(["--port", "5123"]) == 0
    assert seen == {"host": "127.0.0.1", "argv": ["azmlinfsrv", "--port", "5123"]}


def test_the_start_up_marks_come_in_order_and_only_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from azureml_inference_server_http import amlserver

    from harness.backends.local.server import KEYS_ENV, STARTUP_ENV, score
    from harness.backends.local.server import __main__ as launcher

    marks = tmp_path / "startup.json"
    monkeypatch.setattr(amlserver, "run", lambda: 0)
    monkeypatch.delenv(STARTUP_ENV, raising=False)
    assert launcher.main([]) == 0
    assert not list(tmp_path.iterdir())  # no file unless the deployment asked for one
    monkeypatch.setenv(STARTUP_ENV, str(marks))
    monkeypatch.setenv(KEYS_ENV, KEY)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    monkeypatch.setattr("harness.backends.local.server.generator.Generator", FakeGenerator)
    monkeypatch.setattr(score, "_state", {})
    assert launcher.main([]) == 0
    score.init()
    steps = json.loads(marks.read_text())
    assert list(steps) == ["main", "server_imported", "init_started", "model_loaded"]
    assert list(steps.values()) == sorted(steps.values())
    assert [p.name for p in tmp_path.iterdir()] == ["startup.json"]


class FakeGenerator:
    def __init__(self, model_dir: Path, device: str) -> None:
        self.model_dir = model_dir
