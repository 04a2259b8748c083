"""Create-once, delete-once bookkeeping for the session's expensive resources.

Without pytest-xdist every fixture deletes what it created when it is torn down. Under
``pytest -n N`` each worker runs the same session fixtures, so the first worker to ask for a
resource creates it under a file lock and records it in a state file; the others read it back.
Deletion is then the coordinating process's job, after the last worker is done, from the
cleanup list in that state file (like pytest-databases).

Every run also has a directory in the workspace, ``runs/<run id>``, holding its liveness mark
(``RunMark``) and, under xdist, that shared state: the sweep skips the resources of a run whose
mark is held and removes the directories of runs that are gone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sys
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
RUNS_DIR = "runs"  # in the workspace: one directory per run, named by its run id
ALIVE_FILE = "alive.lock"
INTERRUPTED_WAIT_S = 5.0  # per deletion, after Ctrl-C or SIGTERM: CI kills soon after
DELETE_ORDER = (ResourceKind.ENDPOINT, ResourceKind.MODEL, ResourceKind.JOB, ResourceKind.COMPUTE)

S = TypeVar("S", bound="Shareable")
Register = Callable[[str], None]  # called with a resource's name as soon as it exists


class Shareable(Protocol):
    """A value another process can rebuild: a backend handle, the prepared data."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S: ...


def runs_root(workspace_dir: Path) -> Path:
    return workspace_dir.expanduser().resolve() / RUNS_DIR


@dataclass
class RunMark:
    """A run's liveness mark: a shared ``flock`` on ``runs/<run id>/alive.lock``.

    Every process of a run that may create resources (the pytest process; under xdist the
    controller and each worker) holds it while it lives, and the kernel drops it however the
    process ends, SIGKILL included: "is the run alive" is "is the lock held", with no pid to be
    reused and no stale file to trust.
    """

    directory: Path
    _fd: int | None = None

    @property
    def path(self) -> Path:
        return self.directory / ALIVE_FILE

    def hold(self) -> RunMark:
        """Take the mark (idempotent). A sweep may remove a dead run's directory between our
        open and our lock; the mark only counts on the file the path still names."""
        while self._fd is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue  # the directory was removed between mkdir and open
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _names(self.path, fd):
                self._fd = fd
            else:
                os.close(fd)
        return self

    def release(self, remove: bool = True) -> None:
        """Drop the mark; the last process of the run to drop it removes the directory, unless
        ``remove`` is False (an xdist worker: the controller still reads the shared state)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            remove_if_dead(self.directory)


def _names(path: Path, fd: int) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


def run_is_alive(workspace_dir: Path, run_id: str) -> bool:
    """Whether some process of run ``run_id`` holds its mark in this workspace."""
    try:
        fd = os.open(runs_root(workspace_dir) / run_id / ALIVE_FILE, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)
    return False


def remove_if_dead(directory: Path, dry_run: bool = False) -> bool:
    """Remove a run's directory unless a process of the run holds its mark; True if it was
    (or, with ``dry_run``, would be) removed. The removal happens under the exclusive lock,
    so a run starting at that moment waits, sees its file gone, and starts over."""
    try:  # created if missing: a run between its mkdir and its open contends for this file
        fd = os.open(directory / ALIVE_FILE, os.O_RDONLY | (0 if dry_run else os.O_CREAT), 0o644)
    except FileNotFoundError:
        return dry_run and directory.is_dir()
    except NotADirectoryError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not dry_run:
            shutil.rmtree(directory, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def remove_dead_runs(workspace_dir: Path, dry_run: bool = False) -> list[Path]:
    """The sweep: remove the directories of runs that are over (their shared state and data)."""
    root = runs_root(workspace_dir)
    found = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [directory for directory in found if remove_if_dead(directory, dry_run)]


def _orphaned(key: str, state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The error entry for a creation whose worker died half-way: it registered a resource
    (a submitted job, ...) but never recorded the result. Creating it again would make a
    second one while the first may still run; it is deleted with the others at the end."""
    names = [c["name"] for c in state.get("cleanups", []) if c.get("key") == key]
    if not names:
        return None
    return {
        "error": f"the worker creating it died after creating {', '.join(names)}; not "
        "creating another: it is deleted at the end of the run"
    }


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
    terminal summary; they never replace a test's own outcome. ``keep_on_failure``
    (``--keep-resources``) keeps what the run created once something failed: a creation step
    that raised, or a failed test (the plugin calls ``failure``), noted when it happens.
    """

    shared_dir: Path | None = None
    run_mark: RunMark | None = None
    delete_timeout_s: float = 60.0
    keep_on_failure: bool = False
    failed: bool = False
    backend: Backend | None = None
    progress: Progress = field(default_factory=Progress)
    problems: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C or SIGTERM: deletions wait briefly
    abandoned: bool = False  # a second signal: no more deletions (see abandon)
    deleting: bool = False  # a signal now must not break a deletion half-way
    pending: list[Cleanup] = field(default_factory=list)
    handled: list[Cleanup] = field(default_factory=list)  # deleted, kept, failed or left
    say: Callable[[str], None] = field(
        default=lambda line: print(line, file=sys.stderr, flush=True)
    )
    _memo: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def coordinated(self) -> bool:
        return self.shared_dir is not None

    def failure(self) -> None:
        """Something failed: from now on, ``--keep-resources`` keeps what exists."""
        self.failed = True

    def keep(self) -> bool:
        return self.keep_on_failure and self.failed

    def hold_run(self) -> None:
        """Mark the run alive in this process before it creates anything (see RunMark)."""
        if self.run_mark is None:
            return
        try:
            self.run_mark.hold()
        except OSError as exc:
            raise HarnessError(
                f"cannot mark the run alive in {self.run_mark.directory} ({exc.strerror}); "
                "pass a writable directory with --workspace"
            ) from None

    def once(self, key: str, kind: type[S], create: Callable[[], S]) -> S:
        """``create()`` once per test run; every caller (every worker) gets the same value."""
        if key not in self._memo:
            self._memo[key] = self._create_once(key, lambda: create().to_dict())
        return kind.from_dict(self._memo[key])

    def _create_once(self, key: str, create: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.shared_dir is None:
            return create()
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.shared_dir / f"{key}.lock")):
            state = self._read()
            entry = state.get("resources", {}).get(key) or _orphaned(key, state)
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
            if self.coordinated:  # "key": which creation registered it (see _orphaned)
                record = {"kind": kind.value, "name": name, "key": kind.value}
                self._update(lambda s: s.setdefault("cleanups", []).append(record))

        try:
            yield self.once(kind.value, handle, lambda: create(register))
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        except Exception:
            self.failure()  # decided now, before the deletion below reads it
            raise
        finally:
            if registered and not self.coordinated and self.backend is not None:
                self.delete(registered, self.backend)

    def delete(self, cleanups: list[Cleanup], backend: Backend) -> None:
        """Delete endpoints first (they bill, and a deployed model cannot go before them), then
        models, jobs (a job's files go with it once no model uses them) and clusters, each
        kind newest first; report failures, keep going.

        After an interruption there is no time to wait: each deletion is started and waited
        on briefly; a slow one is reported and left for the sweep to finish. After a second
        signal (CI's SIGTERM, SIGKILL follows) nothing more is started: ``abandon`` has named
        each resource left for the sweep.
        """
        ordered = sorted(reversed(cleanups), key=lambda c: DELETE_ORDER.index(c.kind))
        self.pending, self.deleting = list(ordered), True
        try:
            for cleanup in ordered:
                if self.abandoned:
                    self._leave(cleanup)
                    self._said(cleanup, "started", "left for the sweep after a second signal")
                else:
                    self._delete_one(cleanup, backend)
                self.pending.remove(cleanup)
                self.handled.append(cleanup)
        finally:
            self.pending, self.deleting = [], False

    def _delete_one(self, cleanup: Cleanup, backend: Backend) -> None:
        if self.keep():
            self.kept.append(cleanup.describe())
            self._said(cleanup, "kept", "--keep-resources after a failure")
            return
        timeout_s = INTERRUPTED_WAIT_S if self.interrupted else self.delete_timeout_s
        try:
            with self.progress.stage(f"delete_{cleanup.kind.value}", cleanup.name):
                delete_resource(backend, cleanup.kind, cleanup.name, timeout_s)
        except Exception as exc:  # reported, never hides the test outcome
            message = f"could not delete {cleanup.describe()}: {exc}"
            self.problems.append(message)
            self._said(cleanup, "failed", str(exc))
            warnings.warn(TeardownWarning(message), stacklevel=3)
        else:
            self._said(cleanup, "deleted")

    def _said(self, cleanup: Cleanup, outcome: str, detail: str = "") -> None:
        self.progress.record(
            "teardown",
            resource=cleanup.kind.value,
            name=cleanup.name,
            outcome=outcome,
            **({"detail": detail[:500]} if detail else {}),
        )

    def abandon(self) -> None:
        """A second signal: start no more deletions and name, at once, each resource left
        (the one being deleted included): SIGKILL may come before the summary does. (Called
        from the signal handler: it only prints; the deletion loop records.)"""
        if not self.abandoned:
            self.abandoned = True
            for cleanup in list(self.pending):
                self._leave(cleanup)

    def _leave(self, cleanup: Cleanup) -> None:
        line = f"left for `python -m harness sweep` after a second signal: {cleanup.describe()}"
        if line not in self.problems:
            self.problems.append(line)
            self.say(f"harness: {line}")

    def recorded(self) -> list[Cleanup]:
        """Coordinator: every deletion the workers recorded."""
        entries = self._read().get("cleanups", [])
        return [Cleanup(ResourceKind(e["kind"]), str(e["name"])) for e in entries]

    def delete_recorded(self, backend: Backend) -> None:
        """Coordinator: delete everything the workers recorded and no earlier pass handled."""
        self.delete([c for c in self.recorded() if c not in self.handled], backend)

    def _read(self) -> dict[str, Any]:
        assert self.shared_dir is not None
        path = self.shared_dir / STATE_FILE
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        assert self.shared_dir is not None
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.shared_dir / f"{STATE_FILE}.lock")):
            state = self._read()
            change(state)
            write_json(self.shared_dir / STATE_FILE, state)
