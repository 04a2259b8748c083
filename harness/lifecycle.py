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
from typing import Any, Protocol, TypeVar

from filelock import FileLock

from harness.backends.base import Backend, ResourceKind, delete_resource
from harness.errors import HarnessError
from harness.files import write_json
from harness.progress import Progress

STATE_FILE = "harness-state.json"
INTERRUPTED_WAIT_S = 5.0  # per deletion, after Ctrl-C or SIGTERM: CI kills soon after

S = TypeVar("S", bound="Shareable")
Register = Callable[[str], None]  # called with a resource's name as soon as it exists


class Shareable(Protocol):
    """A value another process can rebuild: a backend handle, the prepared data."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S: ...


class TeardownWarning(UserWarning):
    """A resource could not be deleted; it may still exist and cost money."""


@dataclass(frozen=True)
class Cleanup:
    """One deletion to perform: which kind of resource, and its name."""

    kind: ResourceKind
    name: str

    def describe(self) -> str:
        return f"{self.kind.value} {self.name}"


@dataclass
class ResourceTracker:
    """What this run created, and the state shared with sibling xdist workers.

    ``shared_dir`` is None outside xdist. ``problems`` collects teardown failures for the
    terminal summary; they never replace a test's own outcome.
    """

    shared_dir: Path | None = None
    delete_timeout_s: float = 60.0
    keep: Callable[[], bool] = lambda: False
    backend: Backend | None = None
    progress: Progress = field(default_factory=Progress)
    problems: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    interrupted: bool = False
    _memo: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def coordinated(self) -> bool:
        return self.shared_dir is not None

    def once(self, key: str, kind: type[S], create: Callable[[], S]) -> S:
        """``create()`` once per test run; every caller (every worker) gets the same value."""
        if key not in self._memo:
            self._memo[key] = self._create_once(key, lambda: create().to_dict())
        return kind.from_dict(self._memo[key])

    def _create_once(self, key: str, create: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.shared_dir is None:
            return create()
        with FileLock(str(self.shared_dir / f"{key}.lock")):
            entry = self._read().get("resources", {}).get(key)
            if entry is None:
                entry = self._create_recorded(key, create)
        if "error" in entry:
            raise HarnessError(f"{key} failed in another worker: {entry['error']}")
        return dict(entry["value"])

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
        self, kind: ResourceKind, handle: type[S], create: Callable[[Register], S]
    ) -> Iterator[S]:
        """Create once, delete on exit. ``create(register)`` calls ``register(name)`` as soon
        as the resource exists, before anything that can fail (waiting, checking), so a
        half-created resource is deleted too. Under xdist the deletion is only recorded: the
        coordinating process performs it after the last worker.
        """
        registered: list[Cleanup] = []

        def register(name: str) -> None:
            cleanup = Cleanup(kind, name)
            registered.append(cleanup)
            if self.coordinated:
                record = {"kind": kind.value, "name": name}
                self._update(lambda s: s.setdefault("cleanups", []).append(record))

        try:
            yield self.once(kind.value, handle, lambda: create(register))
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
        timeout_s = INTERRUPTED_WAIT_S if self.interrupted else self.delete_timeout_s
        for cleanup in reversed(cleanups):
            if self.keep():
                self.kept.append(cleanup.describe())
                self._said(cleanup, "kept", "--keep-resources after a failure")
                continue
            try:
                with self.progress.stage(f"delete_{cleanup.kind.value}", cleanup.name):
                    delete_resource(backend, cleanup.kind, cleanup.name, timeout_s)
            except Exception as exc:  # reported, never hides the test outcome
                message = f"could not delete {cleanup.describe()}: {exc}"
                self.problems.append(message)
                self._said(cleanup, "failed", str(exc))
                warnings.warn(TeardownWarning(message), stacklevel=2)
            else:
                self._said(cleanup, "deleted")

    def _said(self, cleanup: Cleanup, outcome: str, detail: str = "") -> None:
        self.progress.record("teardown", resource=cleanup.kind.value, name=cleanup.name,
                             outcome=outcome, **({"detail": detail[:500]} if detail else {}))

    def recorded(self) -> list[Cleanup]:
        """Coordinator: every deletion the workers recorded."""
        entries = self._read().get("cleanups", [])
        return [Cleanup(ResourceKind(e["kind"]), str(e["name"])) for e in entries]

    def delete_recorded(self, backend: Backend) -> None:
        """Coordinator: delete everything the workers recorded."""
        self.delete(self.recorded(), backend)

    def _read(self) -> dict[str, Any]:
        assert self.shared_dir is not None
        path = self.shared_dir / STATE_FILE
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        assert self.shared_dir is not None
        with FileLock(str(self.shared_dir / f"{STATE_FILE}.lock")):
            state = self._read()
            change(state)
            write_json(self.shared_dir / STATE_FILE, state)
