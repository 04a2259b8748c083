"""Local endpoint state: reservation, key file permissions, port checks, and the sweep's view."""

from __future__ import annotations

import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.backends.local import deployments, endpoints, processes, sweep
from harness.backends.local.processes import (
    Child,
    group_members,
    owned_members,
    spawn,
    stop,
)
from harness.backends.local.workspace import Workspace
from harness.errors import DeploymentError
from harness.naming import ownership_tags


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


def dead_process() -> dict[str, object]:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return {"pid": proc.pid, "started": 1.0, "cmdline": ["true"], "token": "0" * 32}


def test_the_sweep_finds_a_stale_server_by_its_tags_and_cleans_it(ws: Workspace) -> None:
    tags = ownership_tags("run1", 1.0)
    stale = endpoints.create(ws, "ep-stale", tags)
    endpoints.save(ws, replace(stale, deployment={"process": dead_process(), "name": "demo"}))
    endpoints.create(ws, "ep-not-ours", {})
    found = sweep.owned_endpoints(ws)
    assert [(r.kind, r.name) for r in found] == [("endpoint", "ep-stale")]
    assert "server dead" in found[0].detail and found[0].tags == tags
    deployments.delete(ws, "ep-stale")
    assert endpoints.load(ws, "ep-stale") is None and sweep.owned_endpoints(ws) == []
    assert endpoints.load(ws, "ep-not-ours") is not None


def test_deleting_an_endpoint_stops_its_server_group(ws: Workspace) -> None:
    state = endpoints.create(ws, "ep-live", ownership_tags("run1", 1.0))
    server = spawn(["sh", "-c", "sleep 30 & sleep 30"], ws.root / "server.log", {}, ws.root)
    endpoints.save(ws, replace(state, deployment={"process": server.record.to_dict()}))
    assert "server alive" in sweep.owned_endpoints(ws)[0].detail
    assert deployments.delete(ws, "ep-live")
    assert server.wait(timeout=5) != 0 and not group_members(server.pid)


def test_the_keys_stay_out_of_the_states_repr(ws: Workspace) -> None:
    state = endpoints.create(ws, "ep-keys", {})
    assert not any(key in repr(state) for key in state.keys)


@pytest.fixture
def strangers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two unrelated process groups, as `setsid sleep 30` twice would make."""
    started = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(2)]
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def reused(pid: int) -> dict[str, object]:
    """A record of a harness process that died, whose pid now belongs to someone else."""
    started = psutil.Process(pid).create_time() - 60
    cmdline = ["python", "-m", "harness.backends.local.server"]
    return {"pid": pid, "started": started, "cmdline": cmdline, "token": "f" * 32}


def test_a_stale_state_naming_a_reused_pid_stops_nothing(
    ws: Workspace, strangers: list[subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    """The sweep's deletions of a stale endpoint and a stale job leave both strangers alive;
    the one a deletion would have signalled is named in a warning."""
    from harness.backends.local.job_files import PROCESS_FILE, write_status
    from harness.files import write_json

    stale = endpoints.create(ws, "ep-stale", ownership_tags("run1", 1.0))
    endpoints.save(ws, replace(stale, deployment={"process": reused(strangers[0].pid)}))
    write_status(ws.jobs / "job1", "Running")
    write_json(ws.jobs / "job1" / PROCESS_FILE, reused(strangers[1].pid))
    assert "server dead" in sweep.owned_endpoints(ws)[0].detail
    with caplog.at_level("WARNING", logger="harness"):
        assert deployments.delete(ws, "ep-stale")
        RecordingJobs(ws).cancel("job1")
    assert [proc.poll() for proc in strangers] == [None, None]
    assert endpoints.load(ws, "ep-stale") is None
    assert f"not stopping pid {strangers[0].pid} `sleep 30`" in caplog.text
    assert "of endpoint ep-stale: it is not the harness's" in caplog.text
    assert "without reporting a result" in RecordingJobs(ws).get("job1").error


class RecordingJobs:
    """Jobs whose MLflow bookkeeping is skipped (no database in a unit test)."""

    def __new__(cls, ws: Workspace) -> Any:
        from harness.backends.local.jobs import Jobs

        jobs = Jobs(ws)
        jobs.end_run = lambda name, status: None  # type: ignore[method-assign]
        return jobs


def orphaned_child(tmp_path: Path) -> Child:
    """A server-like group whose leader was SIGKILLed once it had forked its child."""
    server = spawn(["sh", "-c", "sleep 30 & wait"], tmp_path / "log", {}, tmp_path)
    deadline = time.monotonic() + 5
    while len(group_members(server.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    server.wait()
    return server


def test_an_orphaned_child_of_a_server_is_still_proven_and_stopped(tmp_path: Path) -> None:
    """The leader died (SIGKILL); its child carries the token and is stopped by the record."""
    server = orphaned_child(tmp_path)
    assert owned_members(server.record)
    assert stop(server.record, grace_s=2)
    assert not group_members(server.pid)


def test_a_child_in_the_middle_of_its_exec_at_the_first_look_is_still_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader died; its child, between fork and exec, cannot be read at ``stop``'s first
    look (no environment: neither ours nor a stranger yet). ``stop`` once answered "nothing
    was running" and left it alive (seen on a loaded machine, 1 round of 5); it looks again
    until the child can be told, then stops it."""
    server = orphaned_child(tmp_path)
    real, looks = processes.is_ours, []

    def mid_exec_at_first(proc: psutil.Process, record: processes.ProcessRecord) -> bool | None:
        looks.append(proc.pid)
        return None if len(looks) <= 3 else real(proc, record)

    monkeypatch.setattr(processes, "is_ours", mid_exec_at_first)
    try:
        assert stop(server.record, grace_s=2)
        assert not group_members(server.pid)
    finally:
        for left in group_members(server.pid):
            left.kill()


def test_scoring_a_server_that_died_says_it_exited_with_its_log(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "no reply within 90 s": the exit code and the log tail are the clue."""
    from harness import config
    from harness.backends.base import REQUEST_TIMEOUT_MS, Deployment
    from harness.backends.local import LocalBackend
    from harness.errors import ScoringError

    monkeypatch.setattr(Workspace, "warm_up", lambda self: None)  # seconds of CPU, unused
    backend = LocalBackend(config.resolve(cli={"workspace_dir": str(ws.root)}, env={}, ini={}))
    state = endpoints.create(ws, "ep-dead", ownership_tags("run1", 1.0))
    log = deployments.log_path(ws, "ep-dead")
    server = spawn(["sh", "-c", "echo CUDA error: out of memory; exit 3"], log, {}, ws.root)
    server.wait()
    endpoints.save(ws, replace(state, deployment={"process": server.record.to_dict()}))
    backend.servers["ep-dead"] = server
    deployment = Deployment(
        "dep", "ep-dead", "m", "Local_CPU", "Succeeded", 100, REQUEST_TIMEOUT_MS
    )
    with pytest.raises(ScoringError, match=r"exited \(exit code 3\); log .*ep-dead.log") as raised:
        backend.invoke(state.handle(), deployment, {"input_data": {}})
    assert "CUDA error: out of memory" in str(raised.value)
    backend.close(stop_owned=True)


def test_a_deployed_server_of_the_run_that_died_is_a_dead_part(ws: Workspace) -> None:
    """Only a server whose deployment succeeded and that no longer runs: one still loading
    fails its own deployment, another run's is not this run's, a live one serves."""
    tags, theirs = ownership_tags("run1", 1.0), ownership_tags("run2", 1.0)
    live = spawn(["sleep", "30"], ws.root / "live.log", {}, ws.root)
    for name, owner, process, state in (
        ("ep-dead", tags, dead_process(), "Succeeded"),
        ("ep-loading", tags, dead_process(), "Creating"),
        ("ep-theirs", theirs, dead_process(), "Succeeded"),
        ("ep-live", tags, live.record.to_dict(), "Succeeded"),
    ):
        made = endpoints.create(ws, name, owner)
        deployment = {"process": process, "provisioning_state": state}
        endpoints.save(ws, replace(made, deployment=deployment))
    log = deployments.log_path(ws, "ep-dead")
    assert deployments.dead_servers(ws, "run1") == [
        "inference server of endpoint ep-dead is not running: it exited (exit code unknown: "
        f"another process started it); log {log}"
    ]
    live.kill()
    live.wait()
    assert len(deployments.dead_servers(ws, "run1")) == 2


def test_the_local_backend_names_its_runs_dead_parts_and_other_backends_have_none(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the xdist controller asks (``base.dead_parts``): the local backend's dead server of
    its own run; a backend without the step (Azure, a user's) answers nothing."""
    from harness import config
    from harness.backends.base import dead_parts
    from harness.backends.local import LocalBackend

    monkeypatch.setattr(Workspace, "warm_up", lambda self: None)  # seconds of CPU, unused
    cli = {"workspace_dir": str(ws.root), "run_id": "hrun1"}
    backend = LocalBackend(config.resolve(cli=cli, env={}, ini={}))
    state = endpoints.create(ws, "ep-dead", ownership_tags("hrun1", 1.0))
    deployment = {"process": dead_process(), "provisioning_state": "Succeeded"}
    endpoints.save(ws, replace(state, deployment=deployment))
    assert dead_parts(backend) == deployments.dead_servers(ws, "hrun1")
    assert len(dead_parts(backend)) == 1
    assert dead_parts(object()) == []  # type: ignore[arg-type]
    backend.close(stop_owned=False)
