"""The janitor: deletes owned, expired resources of earlier runs and never touches the others.

A run that is killed (or a machine that dies) leaves resources behind; the nightly sweep finds
them by the ownership and expiry tags every resource carries (``harness.naming``), skips those
of a run still alive in this workspace, and tries every deletion before it reports failures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness import lifecycle, naming
from harness.backends.base import OwnedResource, ResourceKind, delete_resource
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.config import HarnessConfig

EXIT_DELETE_FAILED = 1
# What the sweep did to each resource it found (``sweep --json``'s "action")
DELETED, WOULD_DELETE, FAILED, KEPT = "deleted", "would delete", "failed", "kept"
ACTIONS = (DELETED, WOULD_DELETE, FAILED, KEPT)
ALIVE = "its run is still running"
_UNITS_H = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}


def parse_duration_h(text: str) -> float:
    """``6h``, ``30m``, ``2d``, ``90s`` or plain hours, as hours."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise ConfigError(
            f"--older-than {text!r} is not a duration; use a number with s, m, h or d "
            "(e.g. 6h, 30m, 2d)"
        )
    return float(match.group(1)) * _UNITS_H[match.group(2) or "h"]


def sweep(
    cfg: HarnessConfig,
    older_than_h: float | None = None,
    dry_run: bool = False,
    as_json: bool = False,
) -> int:
    """Delete (or list) owned, expired resources; try them all, then report failures.

    The resources of a run that is still alive in this workspace are never deleted, whatever
    ``older_than_h`` says; on Azure, where a run on another machine leaves no mark here,
    ``older_than_h`` is what keeps them. Then the directories of finished runs go. Says each
    action as it happens, or (``as_json``) prints one JSON object at the end: every resource
    found with what was done to it and why, the directories and model builds removed, the
    errors. Returns the exit status of ``python -m harness sweep``.
    """
    record = SweepRecord(dry_run, older_than_h, cfg.backend, echo=not as_json)
    with _harness_log_on_stderr():
        _sweep(cfg, record)
    if as_json:
        print(json.dumps(record.to_dict(), indent=2))
    else:
        print(record.summary())
    return EXIT_DELETE_FAILED if record.errors else 0


@dataclass
class SweepRecord:
    """What the sweep found and did; with ``echo`` each action is said as it happens (a slow
    deletion on Azure takes minutes: the line before it says what is being waited for)."""

    dry_run: bool
    older_than_h: float | None
    backend: str
    echo: bool = True
    resources: list[dict[str, Any]] = field(default_factory=list)
    run_directories: list[str] = field(default_factory=list)
    model_cache_builds: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def resource(self, found: OwnedResource, action: str, reason: str) -> dict[str, Any]:
        entry = {
            "kind": ResourceKind(found.kind).value,
            "name": found.name,
            "run_id": found.tags.get(naming.TAG_RUN_ID),
            "expires": found.tags.get(naming.TAG_EXPIRES),
            "detail": found.detail,
            "action": action,
            "reason": reason,
        }
        self.resources.append(entry)
        return entry

    def failed(self, entry: dict[str, Any], exc: Exception) -> None:
        entry["action"] = FAILED
        error = f"could not delete {entry['kind']} {entry['name']}: {type(exc).__name__}: {exc}"
        self.errors.append({"kind": entry["kind"], "name": entry["name"], "error": error})
        if self.echo:
            print(f"error: {error}", file=sys.stderr)

    def say(self, line: str) -> None:
        if self.echo:
            print(line)

    def summary(self) -> str:
        doomed = [r for r in self.resources if r["action"] != KEPT or r["reason"] == ALIVE]
        skipped = sum(r["reason"] == ALIVE for r in self.resources)
        return (
            f"sweep: {len(doomed)} expired owned resource(s), {skipped} of live runs skipped, "
            f"{len(self.errors)} failed"
        )

    def to_dict(self) -> dict[str, Any]:
        counts = {a: sum(r["action"] == a for r in self.resources) for a in ACTIONS}
        return {
            "dry_run": self.dry_run,
            "backend": self.backend,
            "older_than_h": self.older_than_h,
            "clean": not self.errors,
            "counts": counts,
            "resources": self.resources,
            "run_directories": self.run_directories,
            "model_cache_builds": self.model_cache_builds,
            "errors": self.errors,
        }


def _sweep(cfg: HarnessConfig, record: SweepRecord) -> None:
    from harness.backends import create_backend

    backend = create_backend(cfg, warm_up=False)
    try:
        _delete_all(backend, backend.list_owned_resources(), record, cfg)
    finally:
        backend.close(stop_owned=True)
    verb = "would remove" if record.dry_run else "removed"
    for directory in lifecycle.remove_dead_runs(cfg.workspace_dir, record.dry_run):
        record.run_directories.append(str(directory))
        record.say(f"{verb} the directory of finished run {directory.name}: {directory}")
    if cfg.backend == "local":
        from harness.backends.local.sweep import stale_model_builds

        hours = cfg.resource_ttl_h if record.older_than_h is None else record.older_than_h
        for path in stale_model_builds(cfg.model_cache_dir, hours, record.dry_run):
            record.model_cache_builds.append(str(path))
            record.say(f"{verb} the model cache's stale build {path}")


@contextlib.contextmanager
def _harness_log_on_stderr() -> Iterator[None]:
    """The janitor's warnings (a process it refused to stop, ...) go to stderr, one line each,
    for as long as the command runs: a caller that runs it in-process (a test, a notebook) keeps
    its own logging afterwards, and no handler is left writing to a stream that has closed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("harness")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _kept_because(found: OwnedResource, older_than_h: float | None) -> str | None:
    """Why the sweep leaves this resource alone, or None when it may go."""
    if not naming.is_owned(found.tags):
        return f"not the harness's: no {naming.TAG_RUN_ID} tag"
    if not naming.is_expired(found.tags, older_than_h=older_than_h):
        return "not expired" + ("" if older_than_h is None else " nor older than --older-than")
    return None


def _doomed_because(found: OwnedResource) -> str:
    if naming.is_expired(found.tags):
        return f"expired at {found.tags.get(naming.TAG_EXPIRES)}"
    return f"created at {found.tags.get(naming.TAG_CREATED)}, longer ago than --older-than"


def _delete_all(
    backend: Backend, resources: Sequence[OwnedResource], record: SweepRecord, cfg: HarnessConfig
) -> None:
    verb = "would delete" if record.dry_run else "deleting"
    for resource in resources:
        kept = _kept_because(resource, record.older_than_h)
        if kept is not None:
            record.resource(resource, KEPT, kept)
            continue
        run_id = resource.tags.get(naming.TAG_RUN_ID)
        kind = ResourceKind(resource.kind).value
        if run_id and lifecycle.run_is_alive(cfg.workspace_dir, run_id):  # checked just before
            record.resource(resource, KEPT, ALIVE)
            record.say(f"skipping {kind} {resource.name}: run {run_id} is still running")
            continue
        entry = record.resource(
            resource, WOULD_DELETE if record.dry_run else DELETED, _doomed_because(resource)
        )
        expires = resource.tags.get(naming.TAG_EXPIRES)
        record.say(f"{verb} {kind} {resource.name} (run {run_id}, expires {expires})")
        if record.dry_run:
            continue
        try:
            delete_resource(backend, resource.kind, resource.name, cfg.delete_timeout_s)
        except Exception as exc:  # a janitor reports each failure and goes on to the next
            record.failed(entry, exc)
