"""Create-once / delete-once bookkeeping, without pytest in the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.base import Endpoint, ResourceKind
from harness.errors import HarnessError
from harness.lifecycle import Register, ResourceTracker

pytestmark = pytest.mark.unit


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
    assert first.once("x", Endpoint, lambda: calls.append(1) or endpoint("a")) == endpoint("a")
    assert second.once("x", Endpoint, lambda: calls.append(2) or endpoint("b")) == endpoint("a")
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
    with pytest.warns(UserWarning, match="could not delete endpoint ep1"), tracker.resource(
            ResourceKind.ENDPOINT, Endpoint, lambda register: register("ep1") or endpoint("ep1")):
        pass
    assert tracker.problems == ["could not delete endpoint ep1: service said no"]


def test_after_an_interruption_deletions_are_only_started_not_awaited() -> None:
    backend = Deleter()
    tracker = ResourceTracker(backend=backend, delete_timeout_s=1800.0)  # type: ignore[arg-type]

    def create(register: Register) -> Endpoint:
        register("ep1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), tracker.resource(ResourceKind.ENDPOINT, Endpoint,
                                                            create):
        pass
    assert tracker.interrupted and backend.deleted == [("ep1", 5.0)]
