"""The endpoint key never reaches output: not through a repr, and not through the frames of a
failed request, which pytest prints with their arguments (and with ``-l``, their locals)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import Endpoint, Secret
from harness.errors import ScoringError

KEY = "k3y-that-must-never-be-printed-0123456789"


def rendered(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The failure as pytest prints it at its most verbose: long style, arguments, locals;
    from the harness's frames down (the test's own frame holds the key on purpose)."""
    excinfo.traceback = excinfo.traceback[1:]
    return str(excinfo.getrepr(style="long", showlocals=True, funcargs=True, chain=True))


def test_a_secret_shows_a_mask_wherever_it_is_printed() -> None:
    secret = Secret(KEY)
    assert KEY not in f"{secret} {secret!r} {[secret]} {dict(k=secret)}"
    assert secret.reveal() == KEY and secret == Secret(KEY) and secret != Secret("other")
    assert Secret.wrap(KEY) == secret and Secret.wrap(secret) is secret
    assert Secret.wrap(None) is None


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"http://127.0.0.1:{server.getsockname()[1]}/score"


def test_a_request_without_reply_raises_without_the_key(silent_server: str) -> None:
    from harness.backends.http import post_score

    with pytest.raises(ScoringError, match=r"got no reply within 0\.05 s") as raised:
        post_score(silent_server, {"input_data": {}}, Secret(KEY), 0.05, "look at the log")
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert KEY not in rendered(raised)


def test_azure_scoring_without_reply_raises_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """azure-core's pipeline is handed the key in its request's headers."""
    import requests

    from harness.backends.base import RegisteredModel
    from tests.support.azure_fake import ENDPOINT_KEY, fake_azure
    from tests.support.azure_fake.endpoints import Endpoints

    def no_reply(self: Endpoints, call: Any, match: Any) -> Any:
        raise requests.ConnectionError("connection reset by peer")

    monkeypatch.setattr(Endpoints, "_score", no_reply)
    with fake_azure() as rig:
        backend = rig.backend
        backend.begin_create_endpoint("ep-test", {})
        endpoint: Endpoint = backend.wait_for_endpoint("ep-test", timeout_s=5)
        model = RegisteredModel("m", "1", f"{rig.fake.scope.ws_path}/models/m/versions/1", "job")
        deployment = backend.deploy(endpoint, model, "dep-1", "Standard_NC24ads_A100_v4", {}, 5)
        with pytest.raises(ScoringError, match="got no reply") as sdk:
            backend.invoke(endpoint, deployment, {"input_data": {}})
        key = backend.endpoint_key(endpoint)
        assert key.reveal() == ENDPOINT_KEY
        with pytest.raises(ScoringError, match="got no reply") as raw:
            backend.invoke_raw(endpoint, {"input_data": {}}, key)
    for excinfo in (sdk, raw):
        assert excinfo.value.__context__ is None
        assert ENDPOINT_KEY not in rendered(excinfo)
