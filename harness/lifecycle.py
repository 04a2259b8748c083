"""Create-once, delete-once bookkeeping for the session's expensive resources.

Without pytest-xdist every fixture deletes what it created when it is torn down. Under
``pytest -n N`` each worker runs the same session fixtures, so the first worker to ask for a
resource creates it under a file lock and records it in a state file; the others read it back.
Deletion is then the coordinating process's job, after the last worker is done, from the
cleanup list in that state file (like pytest-databases).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.backends.base import (
    Backend,
    Compute,
    Endpoint,
    EndpointPoller,
    Handle,
    JobRun,
    RegisteredModel,
)
from harness.errors import DeploymentError, HarnessError
from harness.waiting import Deadline

STATE_FILE = "harness-state.json"
INTERRUPTED_WAIT_S = 5.0  # per deletion, after Ctrl-C or SIGTERM: CI kills soon after


class TeardownWarning(UserWarning):
    """A resource could not be deleted; it may still exist and cost money."""


@dataclass
class Cleanup:
    """One deletion to perform: which kind of resource, and its handle as a dict."""

    kind: str
    payload: dict[str, Any]

    def describe(self) -> str:
        return f"{self.kind} {self.payload.get('name', '?')}"


def run_cleanup(backend: Backend, cleanup: Cleanup) -> None:
    """Delete (or cancel) one resource through the backend."""
    actions: Mapping[str, Callable[[dict[str, Any]], None]] = {
        "endpoint": lambda p: backend.delete_endpoint(p["name"]),
        "model": lambda p: backend.delete_model(RegisteredModel.from_dict(p)),
        "compute": lambda p: backend.delete_compute(Compute.from_dict(p)),
        "job": lambda p: backend.delete_job(JobRun.from_dict(p)),
    }
    actions[cleanup.kind](cleanup.payload)


@dataclass
class ResourceTracker:
    """What this run created, and the state shared with sibling xdist workers.

    ``shared_dir`` is None outside xdist. ``problems`` collects teardown failures for the
    terminal summary; they never replace a test's own outcome.
    """

    shared_dir: Path | None = None
    keep: Callable[[], bool] = lambda: False
    backend: Backend | None = None
    problems: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    pollers: dict[str, EndpointPoller] = field(default_factory=dict)
    interrupted: bool = False
    _memo: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def coordinated(self) -> bool:
        return self.shared_dir is not None

    def once(self, key: str, create: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``create()`` once per test run; every caller gets the same JSON-able result."""
        if key in self._memo:
            return self._memo[key]
        if self.shared_dir is None:
            self._memo[key] = create()
            return self._memo[key]
        with FileLock(str(self.shared_dir / f"{key}.lock")):
            entry = self._read().get("resources", {}).get(key)
            if entry is None:
                entry = self._create_recorded(key, create)
        if "error" in entry:
            raise HarnessError(f"{key} failed in another worker: {entry['error']}")
        self._memo[key] = entry["value"]
        return self._memo[key]

    def _create_recorded(self, key: str, create: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            entry: dict[str, Any] = {"value": create()}
        except BaseException as exc:
            error = {"error": f"{type(exc).__name__}: {exc}"}
            self._update(lambda s: s.setdefault("resources", {}).__setitem__(key, error))
            raise
        self._update(lambda s: s.setdefault("resources", {}).__setitem__(key, entry))
        return entry

    @contextmanager
    def resource(
        self, key: str, kind: str, create: Callable[[Callable[[dict[str, Any]], None]], Any]
    ) -> Iterator[dict[str, Any]]:
        """Create once, delete on exit; ``create(register)`` calls ``register(payload)`` as
        soon as the resource exists, before anything that can fail (waiting, checking).

        A half-created resource is deleted too. Under xdist the deletion is only recorded:
        the coordinating process performs it after the last worker.
        """
        registered: list[Cleanup] = []

        def register(payload: dict[str, Any]) -> None:
            cleanup = Cleanup(kind, dict(payload))
            registered.append(cleanup)
            if self.coordinated:
                self._update(lambda s: s.setdefault("cleanups", []).append(cleanup.__dict__))

        try:
            yield self.once(key, lambda: _as_dict(create(register)))
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            if registered and not self.coordinated and self.backend is not None:
                self.delete(registered, self.backend)

    def delete(self, cleanups: list[Cleanup], backend: Backend) -> None:
        """Delete in reverse creation order; report failures, keep going.

        After an interruption there is no time to wait: each deletion is started and waited
        on briefly; a slow one is reported and left for the sweep to finish.
        """
        if self.interrupted:
            backend.delete_timeout_s = min(backend.delete_timeout_s, INTERRUPTED_WAIT_S)
        for cleanup in reversed(cleanups):
            if self.keep():
                self.kept.append(cleanup.describe())
                continue
            try:
                run_cleanup(backend, cleanup)
            except Exception as exc:  # reported, never hides the test outcome
                message = f"could not delete {cleanup.describe()}: {exc}"
                self.problems.append(message)
                warnings.warn(TeardownWarning(message), stacklevel=2)

    def recorded(self) -> list[Cleanup]:
        """Coordinator: every deletion the workers recorded."""
        return [Cleanup(e["kind"], e["payload"]) for e in self._read().get("cleanups", [])]

    def delete_recorded(self, backend: Backend) -> None:
        """Coordinator: delete everything the workers recorded."""
        self.delete(self.recorded(), backend)

    def _read(self) -> dict[str, Any]:
        assert self.shared_dir is not None
        path = self.shared_dir / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        assert self.shared_dir is not None
        with FileLock(str(self.shared_dir / f"{STATE_FILE}.lock")):
            state = self._read()
            change(state)
            tmp = self.shared_dir / f"{STATE_FILE}.tmp"
            tmp.write_text(json.dumps(state, indent=1))
            tmp.replace(self.shared_dir / STATE_FILE)


def _as_dict(value: Any) -> dict[str, Any]:
    return value.to_dict() if isinstance(value, Handle) else dict(value)


@dataclass
class EndpointWatcher:
    """Waits for an endpoint another worker started, by reading its state with a deadline."""

    backend: Backend
    name: str
    interval_s: float = 5.0

    def done(self) -> bool:
        return self.backend.get_endpoint(self.name).provisioning_state in {"Succeeded", "Failed"}

    def result(self, timeout_s: float) -> Endpoint:
        seen: list[Endpoint] = []

        def settled() -> bool:
            seen.append(self.backend.get_endpoint(self.name))
            return seen[-1].provisioning_state in {"Succeeded", "Failed", "Canceled"}

        finished = Deadline(timeout_s).until(settled, self.interval_s)
        endpoint = seen[-1]
        if endpoint.provisioning_state == "Succeeded":
            return endpoint
        if finished:
            raise DeploymentError(
                f"endpoint {self.name} is {endpoint.provisioning_state}; see its logs "
                "in the studio, then rerun (the teardown deletes it)")
        raise DeploymentError(
            f"endpoint {self.name} still {endpoint.provisioning_state} after "
            f"{timeout_s:.0f} s; raise --endpoint-timeout or check the region's quota")
