"""Create-once / delete-once bookkeeping, without pytest in the way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.backends.base import Endpoint
from harness.errors import DeploymentError, HarnessError
from harness.lifecycle import EndpointWatcher, ResourceTracker

pytestmark = pytest.mark.unit


class Deleter:
    """Just enough of a Backend to record deletions."""

    def __init__(self, fail: bool = False) -> None:
        self.delete_timeout_s = 60.0
        self.deleted: list[str] = []
        self.fail = fail

    def delete_endpoint(self, name: str) -> None:
        if self.fail:
            raise HarnessError("service said no")
        self.deleted.append(name)


def test_once_shares_a_result_between_trackers_of_one_run(tmp_path: Path) -> None:
    calls: list[int] = []
    first, second = ResourceTracker(shared_dir=tmp_path), ResourceTracker(shared_dir=tmp_path)
    assert first.once("x", lambda: calls.append(1) or {"v": 1}) == {"v": 1}
    assert second.once("x", lambda: calls.append(2) or {"v": 2}) == {"v": 1}
    assert calls == [1]


def test_a_failed_creation_is_not_retried_by_another_worker(tmp_path: Path) -> None:
    def boom() -> dict[str, Any]:
        raise HarnessError("quota")

    with pytest.raises(HarnessError, match="quota"):
        ResourceTracker(shared_dir=tmp_path).once("x", boom)
    with pytest.raises(HarnessError, match="failed in another worker: HarnessError: quota"):
        ResourceTracker(shared_dir=tmp_path).once("x", lambda: {"v": 1})


def test_resource_is_deleted_even_when_creation_fails_after_registering() -> None:
    backend = Deleter()
    tracker = ResourceTracker(backend=backend)  # type: ignore[arg-type]

    def create(register: Any) -> dict[str, str]:
        register({"name": "ep1"})
        raise HarnessError("provisioning failed")

    with pytest.raises(HarnessError), tracker.resource("endpoint", "endpoint", create):
        pass
    assert backend.deleted == ["ep1"]


def test_coordinated_trackers_only_record_and_the_coordinator_deletes(tmp_path: Path) -> None:
    backend = Deleter()
    worker = ResourceTracker(shared_dir=tmp_path, backend=backend)  # type: ignore[arg-type]

    def create(register: Any) -> dict[str, str]:
        register({"name": "ep1"})
        return {"name": "ep1"}

    with worker.resource("endpoint", "endpoint", create):
        pass
    assert backend.deleted == []
    ResourceTracker(shared_dir=tmp_path).delete_recorded(backend)  # type: ignore[arg-type]
    assert backend.deleted == ["ep1"]


def test_deletion_failures_are_collected_not_raised() -> None:
    tracker = ResourceTracker(backend=Deleter(fail=True))  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="could not delete endpoint ep1"), tracker.resource(
            "endpoint", "endpoint", lambda register: register({"name": "ep1"}) or {}):
        pass
    assert tracker.problems == ["could not delete endpoint ep1: service said no"]


def test_after_an_interruption_deletions_are_only_started_not_awaited() -> None:
    backend = Deleter()
    backend.delete_timeout_s = 1800.0
    tracker = ResourceTracker(backend=backend)  # type: ignore[arg-type]

    def create(register: Any) -> dict[str, str]:
        register({"name": "ep1"})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), tracker.resource("endpoint", "endpoint", create):
        pass
    assert tracker.interrupted and backend.deleted == ["ep1"]
    assert backend.delete_timeout_s == 5.0


class Provisioning:
    """Just enough of a Backend to answer get_endpoint with a scripted list of states."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)

    def get_endpoint(self, name: str) -> Endpoint:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return Endpoint(name, "https://x/score", "key", state)


def test_endpoint_watcher_waits_for_another_workers_endpoint() -> None:
    backend = Provisioning("Creating", "Creating", "Succeeded")
    watcher = EndpointWatcher(backend, "ep1", interval_s=0)  # type: ignore[arg-type]
    assert watcher.result(timeout_s=5).provisioning_state == "Succeeded"


@pytest.mark.parametrize("states, message", [
    (("Creating", "Failed"), "endpoint ep1 is Failed"),
    (("Creating",), "still Creating after 0 s"),
])
def test_endpoint_watcher_fails_clearly(states: tuple[str, ...], message: str) -> None:
    watcher = EndpointWatcher(Provisioning(*states), "ep1", interval_s=0)  # type: ignore[arg-type]
    with pytest.raises(DeploymentError, match=message):
        watcher.result(timeout_s=0.01)
