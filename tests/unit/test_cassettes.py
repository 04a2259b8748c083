"""Every cassette under tests/cassettes/ replayed against today's code, offline.

Two kinds, and they prove different things (each cassette's metadata says which it is):

- ``steps`` (tests/cassettes/azure-sdk-assets/, built by tools/sdk_recordings_to_cassette.py
  from the Azure SDK team's public recordings): REAL traffic of the live service. The harness's
  own steps are replayed against it; the requests they send must be the recorded ones and the
  real answers must parse. This is what proves the backend. No recording answers a job cancel:
  that step's answers are the REST API spec's example (tools/rest_api_examples/), which the
  interactions' ``source`` says.
- ``run`` (a whole e2e run, as ``--record-traffic`` writes it; a nightly's cassette committed
  after a human look): the e2e suite is replayed against it. A cassette recorded from the
  project's Azure fake (tests/cassettes/fake-azure-*/) proves only the recorder and replayer,
  since the fake's answers are ours; a nightly's proves the backend against that night's
  service.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import config, replay
from harness.backends.azure import AzureBackend
from harness.errors import DeploymentError, HarnessError
from tests.unit.test_azure_suite import imported_before_the_snapshot
from tests.unit.test_record_replay import replayed

__all__ = ["imported_before_the_snapshot"]
CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
DIRECTORIES = sorted({path.parent for path in CASSETTES.rglob("*.yaml")})
# Each step of a manifest: the harness call, and what it must have read from the real answer.
STEP_CALLS: dict[str, Callable[[AzureBackend, dict[str, Any]], bool]] = {
    "begin_create_endpoint": lambda b, a: bool(b.begin_create_endpoint(a["name"], {"x": "y"})),
    "wait_for_endpoint": lambda b, a: _scoring_uri(b, a["name"]).endswith("/score"),
    "endpoint_key_refused": lambda b, a: "authenticates with tokens" in _key_refused(b, a["name"]),
    "endpoint_key": lambda b, a: b.endpoint_key(b.get_endpoint(a["name"])).reveal() == a["key"],
    "delete_endpoint": lambda b, a: _deleted(b.delete_endpoint, a["name"]),
    "deploy": lambda b, a: _deployed(b, a) == ("Succeeded", 100),
    "get_job": lambda b, a: b.get_job(a["name"]).status == a["status"],
    "delete_job": lambda b, a: _deleted(b.delete_job, a["name"]),
    "registry_refused": lambda b, a: "HTTP 403" in _registry_refused(b, a),
    "registry_model": lambda b, a: _registry_card(b, a) == ("2", {"foo": "bar", "abc": "123"}),
    "create_compute": lambda b, a: _created(b, a["name"], a["size"]) == (a["size"], "Succeeded"),
    "existing_compute": lambda b, a: _cluster(b, a["name"]) == ("Standard_DS2_v2", "Succeeded"),
    "delete_compute": lambda b, a: _deleted(b.delete_compute, a["name"]),
}


def _deleted(delete: Callable[[str, float], None], name: str) -> bool:
    delete(name, 60.0)
    return True


def _scoring_uri(backend: AzureBackend, name: str) -> str:
    endpoint = backend.wait_for_endpoint(name, 60.0)
    assert endpoint.provisioning_state == "Succeeded", endpoint
    return endpoint.scoring_uri


def _key_refused(backend: AzureBackend, name: str) -> str:
    """An AMLToken endpoint's get_keys answers a token: a clear error, never a traceback."""
    with pytest.raises(DeploymentError) as refused:
        backend.endpoint_key(backend.get_endpoint(name))
    return str(refused.value)


def _deployed(backend: AzureBackend, args: dict[str, Any]) -> tuple[str, int]:
    """``deploy`` on the recorded endpoint, with the recorded model's id."""
    from harness.backends.base import Endpoint, RegisteredModel

    endpoint = Endpoint(args["endpoint"], "", "key", "Succeeded")
    model = RegisteredModel("model", "1", args["model"], job_name="")
    made = backend.deploy(endpoint, model, args["name"], args["instance_type"], {}, 60.0)
    return made.provisioning_state, made.traffic_percent


def _in_registry(backend: AzureBackend, registry: str) -> None:
    """The model registry of the recording, on a fresh registry client."""
    backend.config = dataclasses.replace(backend.config, azure_model_registry=registry)
    backend.clients.config = backend.config
    backend.clients.__dict__.pop("model_registry", None)


def _registry_card(backend: AzureBackend, args: dict[str, Any]) -> tuple[str, dict[str, str]]:
    _in_registry(backend, args["registry"])
    card = backend.get_foundation_model(args["name"], args["version"])
    return card.version, dict(card.tags)


def _registry_refused(backend: AzureBackend, args: dict[str, Any]) -> str:
    """The registry's discovery refused: the access error, naming the registry."""
    _in_registry(backend, args["registry"])
    with pytest.raises(HarnessError) as refused:
        backend.get_foundation_model(args["name"], args["version"])
    assert f"registry {args['registry']} refused" in str(refused.value), refused.value
    return str(refused.value)


def _created(backend: AzureBackend, name: str, size: str) -> tuple[str, str]:
    """The creation of one tier as ``ensure_compute`` runs it (its size check reads
    ``list_sizes``, which the SDK's test never asked for)."""
    from harness.backends.azure import compute
    from harness.backends.azure.clients import status_text
    from harness.waiting import Deadline

    made = compute._create(backend.workspace, name, size, {}, Deadline(60.0))
    return str(made.size), status_text(made.provisioning_state)


def _cluster(backend: AzureBackend, name: str) -> tuple[str, str]:
    from harness.backends.azure import compute
    from harness.backends.azure.clients import status_text

    found = compute.existing(backend.workspace, name)
    return str(found.size), status_text(found.provisioning_state)


def _kind(directory: Path) -> str:
    return replay.load(directory).kind


def test_the_repository_holds_a_cassette_of_real_traffic() -> None:
    assert any(_kind(d) == "steps" for d in DIRECTORIES), "tests/cassettes/azure-sdk-assets"


@pytest.mark.parametrize("directory", DIRECTORIES, ids=[d.name for d in DIRECTORIES])
@pytest.mark.usefixtures("imported_before_the_snapshot", "plots_drawn_elsewhere")
def test_every_cassette_replays_against_todays_code(
    directory: Path, pytester: pytest.Pytester
) -> None:
    recording = replay.load(directory)
    if recording.kind == "run":
        replayed(directory, pytester, recording.meta["run_id"])
        return
    replay_steps(recording)


def replay_steps(recording: replay.Recording) -> None:
    """Each step of the manifest against the recording: every recorded exchange is asked for,
    and the requests left unanswered are exactly the ones the manifest says the recording
    never sent (a background poller may ask after its step returned: they are checked
    together)."""
    player = replay.Player(recording, bool(recording.meta.get("match_api_version", True)))
    backend = replay.replay_backend(_settings(recording))
    with replay.playing(player):
        for step in recording.meta["steps"]:
            try:
                assert STEP_CALLS[step["step"]](backend, step["args"]), step["step"]
            except replay.ReplayError:
                assert step["stops_at"], f"{step['step']} went past the recording"
            backend.clients.__dict__.pop("workspace", None)  # each step on a fresh client
        for thread in threading.enumerate():  # the SDK's pollers poll on after a step returns
            if thread.name.startswith("LROPoller"):
                thread.join(timeout=10)
    expected = tuple(prefix for step in recording.meta["steps"] for prefix in step["stops_at"])
    stopped = [f"{u.method} {u.url}" for u in player.unanswered]
    assert not [s for s in stopped if not s.startswith(expected)], stopped
    assert not [p for p in expected if not any(s.startswith(p) for s in stopped)], stopped
    unplayed = [
        where for i, (_, _, where) in enumerate(recording.exchanges) if i not in player.played
    ]
    assert not unplayed, f"recorded exchanges no step asked for: {unplayed}"


def _settings(recording: replay.Recording) -> config.HarnessConfig:
    return config.resolve(
        cli={"backend": "azure", "run_id": recording.meta["run_id"], **recording.meta["settings"]},
        env={},
        ini={},
    )


@pytest.mark.usefixtures("imported_before_the_snapshot")
def test_the_job_cancel_sends_the_request_its_rest_example_answers() -> None:
    """The SDK-recordings cassette matches across api-versions (older azure-ai-ml recorded it),
    but the cancel's answers are the REST API spec's example of one api-version
    (tools/rest_api_examples/job_cancel.json): teardown's cancel must send exactly that POST,
    and poll the Location the example answers, with api-versions matched this time."""
    recording = replay.load(CASSETTES / "azure-sdk-assets")
    step = next(s for s in recording.meta["steps"] if s["step"] == "delete_job")
    player = replay.Player(recording, match_api_version=True)
    with replay.playing(player):
        replay.replay_backend(_settings(recording)).delete_job(step["args"]["name"], 60.0)
    played = [recording.exchanges[i][1]["harness"]["source"] for i in sorted(player.played)]
    assert sum("REST API example" in source for source in played) == 2, played
    assert not player.unanswered, player.unanswered


@pytest.mark.parametrize("directory", DIRECTORIES, ids=[d.name for d in DIRECTORIES])
def test_no_cassette_keeps_anything_the_scrubber_would_take(directory: Path) -> None:
    """Every cassette went through the recorder's Scrubber (the SDK's recordings too, after
    their test proxy's sanitizers): a second pass changes nothing, so no key, token, SAS
    signature, subscription id or user name is left in the repository."""
    from harness.backends.azure.scrubbing import Scrubber

    scrubber = Scrubber()
    for request, response, where in replay.load(directory).exchanges:
        body = response["body"]["string"]
        body = body if isinstance(body, str) else body.decode()
        sent = request.body.decode() if isinstance(request.body, bytes) else request.body
        assert scrubber.text(request.uri) == request.uri, where
        assert sent is None or scrubber.body(sent.encode()).decode() == sent, where
        assert scrubber.headers(response["headers"]) == response["headers"], where
        assert scrubber.body(body.encode()).decode() == body, where
