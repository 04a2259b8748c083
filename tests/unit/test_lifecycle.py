"""Create-once / delete-once bookkeeping and the run's liveness mark, without pytest in the
way."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.base import Endpoint, OwnedResource, ResourceKind
from harness.errors import HarnessError
from harness.lifecycle import (
    STATE_FILE,
    Cleanup,
    Register,
    ResourceTracker,
    RunMark,
    remove_dead_runs,
    remove_if_dead,
    run_is_alive,
    runs_root,
)


class Deleter:
    """Just enough of a Backend to record deletions and the time each may take."""

    def __init__(self, fail: bool = False) -> None:
        self.deleted: list[tuple[str, float]] = []
        self.fail = fail

    def delete_endpoint(self, name: str, timeout_s: float) -> None:
        if self.fail:
            raise HarnessError("service said no")
        self.deleted.append((name, timeout_s))

    delete_compute = delete_job = delete_model = delete_endpoint


def endpoint(name: str) -> Endpoint:
    return Endpoint(name, f"https://{name}/score", "key", "Creating")


def test_once_shares_a_result_between_trackers_of_one_run(tmp_path: Path) -> None:
    calls: list[int] = []
    first, second = ResourceTracker(shared_dir=tmp_path), ResourceTracker(shared_dir=tmp_path)

    def make(n: int, name: str) -> Endpoint:
        calls.append(n)
        return endpoint(name)

    assert first.once("x", Endpoint, lambda: make(1, "a")) == endpoint("a")
    assert second.once("x", Endpoint, lambda: make(2, "b")) == endpoint("a")
    assert calls == [1]


def test_a_failed_creation_is_not_retried_by_another_worker(tmp_path: Path) -> None:
    def boom() -> Endpoint:
        raise HarnessError("quota")

    with pytest.raises(HarnessError, match="quota"):
        ResourceTracker(shared_dir=tmp_path).once("x", Endpoint, boom)
    with pytest.raises(HarnessError, match="failed in another worker: HarnessError: quota"):
        ResourceTracker(shared_dir=tmp_path).once("x", Endpoint, lambda: endpoint("a"))


def test_resource_is_deleted_even_when_creation_fails_after_registering() -> None:
    backend = Deleter()
    tracker = ResourceTracker(backend=backend)  # type: ignore[arg-type]

    def create(register: Register) -> Endpoint:
        register("ep1")
        raise HarnessError("provisioning failed")

    with pytest.raises(HarnessError), tracker.resource(ResourceKind.ENDPOINT, Endpoint, create):
        pass
    assert backend.deleted == [("ep1", 60.0)]


def test_coordinated_trackers_only_record_and_the_coordinator_deletes(tmp_path: Path) -> None:
    backend = Deleter()
    worker = ResourceTracker(shared_dir=tmp_path, backend=backend)  # type: ignore[arg-type]

    def create(register: Register) -> Endpoint:
        register("ep1")
        return endpoint("ep1")

    with worker.resource(ResourceKind.ENDPOINT, Endpoint, create) as made:
        assert made == endpoint("ep1")
    assert backend.deleted == []
    ResourceTracker(shared_dir=tmp_path).delete_recorded(backend)  # type: ignore[arg-type]
    assert backend.deleted == [("ep1", 60.0)]


def test_deletion_failures_are_collected_not_raised() -> None:
    tracker = ResourceTracker(backend=Deleter(fail=True))  # type: ignore[arg-type]

    def create(register: Register) -> Endpoint:
        register("ep1")
        return endpoint("ep1")

    with (
        pytest.warns(UserWarning, match="could not delete endpoint ep1"),
        tracker.resource(ResourceKind.ENDPOINT, Endpoint, create),
    ):
        pass
    assert tracker.problems == ["could not delete endpoint ep1: service said no"]


def test_after_an_interruption_deletions_are_only_started_not_awaited() -> None:
    backend = Deleter()
    tracker = ResourceTracker(backend=backend, delete_timeout_s=1800.0)  # type: ignore[arg-type]

    def create(register: Register) -> Endpoint:
        register("ep1")
        raise KeyboardInterrupt

    with (
        pytest.raises(KeyboardInterrupt),
        tracker.resource(ResourceKind.ENDPOINT, Endpoint, create),
    ):
        pass
    assert tracker.interrupted and backend.deleted == [("ep1", 5.0)]


def hold_in_child(workspace: Path, run_id: str) -> subprocess.Popen[str]:
    """Another process of run ``run_id``, holding its mark until killed."""
    code = (
        "import sys, time; from pathlib import Path; from harness.lifecycle import RunMark, "
        "runs_root; RunMark(runs_root(Path(sys.argv[1])) / sys.argv[2]).hold(); "
        "print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(workspace), run_id], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_a_run_is_alive_while_a_process_holds_its_mark_even_after_sigkill(
    tmp_path: Path,
) -> None:
    child = hold_in_child(tmp_path, "run1")
    assert run_is_alive(tmp_path, "run1") and not run_is_alive(tmp_path, "run2")
    assert remove_dead_runs(tmp_path) == []
    child.kill()
    child.wait()
    assert not run_is_alive(tmp_path, "run1")
    assert remove_dead_runs(tmp_path) == [runs_root(tmp_path) / "run1"]
    assert not (runs_root(tmp_path) / "run1").exists()


def test_the_last_process_of_a_run_removes_its_directory(tmp_path: Path) -> None:
    first, second = (RunMark(runs_root(tmp_path) / "run1").hold() for _ in range(2))
    (first.directory / STATE_FILE).write_text("{}")
    first.release()
    assert second.directory.is_dir() and run_is_alive(tmp_path, "run1")
    second.release()
    assert not second.directory.exists()


def test_a_mark_taken_while_the_sweep_removes_the_directory_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep removes a dead run's directory between a new holder's open and its lock."""

    mark = RunMark(runs_root(tmp_path) / "run1")
    real_flock = fcntl.flock
    raced: list[bool] = []

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_SH and not raced:
            raced.append(remove_if_dead(mark.directory))  # the sweep wins the race once
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    mark.hold()
    assert raced == [True] and run_is_alive(tmp_path, "run1")
    mark.release()


class Lister:
    """A backend for the sweep: lists owned resources of two runs, records deletions."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        tags = {
            "harness-created": "2026-01-01T00:00:00+00:00",
            "harness-expires": "2026-01-02T00:00:00+00:00",
        }
        self.owned = [
            OwnedResource(ResourceKind.ENDPOINT, f"ep-{run}", {**tags, "harness-run-id": run})
            for run in ("live", "dead")
        ]

    def list_owned_resources(self) -> list[OwnedResource]:
        return self.owned

    def delete_endpoint(self, name: str, timeout_s: float) -> None:
        self.deleted.append(name)

    delete_compute = delete_job = delete_model = delete_endpoint

    def close(self, stop_owned: bool) -> None:
        pass


def test_the_sweep_skips_the_resources_of_a_live_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import harness.backends
    from harness.__main__ import main

    backend = Lister()
    monkeypatch.setattr(harness.backends, "create_backend", lambda cfg, **_: backend)
    mark = RunMark(runs_root(tmp_path) / "live").hold()
    (runs_root(tmp_path) / "dead").mkdir()
    assert main(["sweep", "--older-than", "0h", "--workspace", str(tmp_path)]) == 0
    mark.release()
    out = capsys.readouterr().out
    assert backend.deleted == ["ep-dead"]
    assert "skipping endpoint ep-live: run live is still running" in out
    assert f"removed the directory of finished run dead: {runs_root(tmp_path) / 'dead'}" in out


def test_a_worker_that_died_after_creating_is_not_followed_by_a_second_creation(
    tmp_path: Path,
) -> None:
    """The worker that submitted the job was killed before recording it: the next worker
    must not submit a second job while the first may still run."""
    code = (
        "import os, sys; from pathlib import Path; from harness.backends.base import "
        "Endpoint, ResourceKind; from harness.lifecycle import ResourceTracker\n"
        "def create(register):\n    register('job-1'); os._exit(9)\n"
        "with ResourceTracker(shared_dir=Path(sys.argv[1])).resource(ResourceKind.JOB, "
        "Endpoint, create):\n    pass\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 9
    calls: list[str] = []
    survivor = ResourceTracker(shared_dir=tmp_path)
    with pytest.raises(HarnessError, match="worker creating it died after creating job-1"):
        survivor.once("job", Endpoint, lambda: _created(calls, "job-2"))
    assert calls == []
    assert survivor.recorded() == [Cleanup(ResourceKind.JOB, "job-1")]  # deleted at the end


def test_keep_resources_is_decided_when_a_creation_fails() -> None:
    """No test has failed yet when the failing creation's own cleanup runs."""
    backend = Deleter()
    tracker = ResourceTracker(backend=backend, keep_on_failure=True)  # type: ignore[arg-type]

    def create(register: Register) -> Endpoint:
        register("job-1")
        raise HarnessError("job ended with status Failed")

    with pytest.raises(HarnessError), tracker.resource(ResourceKind.JOB, Endpoint, create):
        pass
    assert backend.deleted == [] and tracker.kept == ["job job-1"]


def test_deletions_stop_the_running_and_billing_first() -> None:
    """A model still deployed cannot go before its endpoint, a job's files not before the
    model made of them, a job not after its cluster."""
    backend = Deleter()
    tracker = ResourceTracker(backend=backend)  # type: ignore[arg-type]
    made = [
        Cleanup(ResourceKind.COMPUTE, "c"),
        Cleanup(ResourceKind.ENDPOINT, "e"),
        Cleanup(ResourceKind.JOB, "j"),
        Cleanup(ResourceKind.MODEL, "m"),
    ]
    tracker.delete(made, backend)  # type: ignore[arg-type]
    assert [name for name, _ in backend.deleted] == ["e", "m", "j", "c"]


def test_a_second_signal_starts_no_more_deletions_and_names_what_is_left() -> None:
    said: list[str] = []
    tracker = ResourceTracker(say=said.append)

    class Signalled(Deleter):
        def delete_endpoint(self, name: str, timeout_s: float) -> None:
            tracker.abandon()  # SIGTERM arrives while the endpoint is being deleted
            super().delete_endpoint(name, timeout_s)

    backend = Signalled()
    made = [Cleanup(ResourceKind.ENDPOINT, "e"), Cleanup(ResourceKind.JOB, "j")]
    tracker.delete(made, backend)  # type: ignore[arg-type]
    tracker.delete([Cleanup(ResourceKind.MODEL, "m")], backend)  # type: ignore[arg-type]
    assert [name for name, _ in backend.deleted] == ["e"]  # the one under way is not broken
    prefix = "harness: left for `python -m harness sweep` after a second signal: "
    assert said == [f"{prefix}endpoint e", f"{prefix}job j", f"{prefix}model m"]


def _created(calls: list[str], name: str) -> Endpoint:
    calls.append("created")
    return endpoint(name)
