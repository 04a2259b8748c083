"""Local endpoint state: reservation, key file permissions, port checks, and the sweep's view."""

from __future__ import annotations

import socket
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness.backends.local import deployments, endpoints, sweep
from harness.backends.local.workspace import Workspace
from harness.errors import DeploymentError
from harness.naming import ownership_tags

pytestmark = pytest.mark.unit


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.at(tmp_path)


def test_creating_an_endpoint_reserves_a_loopback_port_and_two_keys(ws: Workspace) -> None:
    state = endpoints.create(ws, "ep-one", {"harness-run-id": "r1"})
    endpoint = state.handle()
    assert endpoint.provisioning_state == "Succeeded" and endpoint.auth_mode == "key"
    assert endpoint.scoring_uri == f"http://127.0.0.1:{state.port}/score"
    assert len(set(state.keys)) == 2 and all(len(key) >= 32 for key in state.keys)
    assert stat.S_IMODE(endpoints.path_of(ws, "ep-one").stat().st_mode) == 0o600
    assert endpoints.load(ws, "ep-one") == state


def test_endpoint_names_are_never_reused(ws: Workspace) -> None:
    endpoints.create(ws, "ep-one", {})
    with pytest.raises(DeploymentError, match="never reused"):
        endpoints.create(ws, "ep-one", {})


def test_a_port_held_by_another_process_is_a_clear_error() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(DeploymentError, match="cannot be bound"):
            endpoints.check_port_free(held.getsockname()[1])


def test_an_unknown_endpoint_is_a_clear_error(ws: Workspace) -> None:
    with pytest.raises(DeploymentError, match="does not exist"):
        endpoints.require(ws, "missing")
    assert deployments.delete(ws, "missing") is False


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_sweep_finds_a_stale_server_by_its_tags_and_cleans_it(ws: Workspace) -> None:
    tags = ownership_tags("run1", 1.0)
    stale = endpoints.create(ws, "ep-stale", tags)
    endpoints.save(ws, replace(stale, deployment={"pgid": dead_pid(), "name": "demo"}))
    endpoints.create(ws, "ep-not-ours", {})
    found = sweep.owned_endpoints(ws)
    assert [(r.kind, r.name) for r in found] == [("endpoint", "ep-stale")]
    assert "server dead" in found[0].detail and found[0].tags == tags
    deployments.delete(ws, "ep-stale")
    assert endpoints.load(ws, "ep-stale") is None and sweep.owned_endpoints(ws) == []
    assert endpoints.load(ws, "ep-not-ours") is not None


def test_deleting_an_endpoint_stops_its_server_group(ws: Workspace) -> None:
    state = endpoints.create(ws, "ep-live", ownership_tags("run1", 1.0))
    server = subprocess.Popen(["sleep", "30"], start_new_session=True)
    endpoints.save(ws, replace(state, deployment={"pgid": server.pid}))
    assert "server alive" in sweep.owned_endpoints(ws)[0].detail
    assert deployments.delete(ws, "ep-live")
    assert server.wait(timeout=5) != 0
