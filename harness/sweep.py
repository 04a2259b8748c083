"""The janitor: deletes owned, expired resources of earlier runs and never touches the others.

A run that is killed (or a machine that dies) leaves resources behind; the nightly sweep finds
them by the ownership and expiry tags every resource carries (``harness.naming``), skips those
of a run still alive in this workspace, and tries every deletion before it reports failures.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from harness import lifecycle, naming
from harness.backends.base import ResourceKind, delete_resource
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.backends.base import Backend, OwnedResource
    from harness.config import HarnessConfig

EXIT_DELETE_FAILED = 1
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


def sweep(cfg: HarnessConfig, older_than_h: float | None = None, dry_run: bool = False) -> int:
    """Delete (or list) owned, expired resources; try them all, then report failures.

    The resources of a run that is still alive in this workspace are never deleted, whatever
    ``older_than_h`` says; on Azure, where a run on another machine leaves no mark here,
    ``older_than_h`` is what keeps them. Then the directories of finished runs go. Returns the
    exit status of ``python -m harness sweep``.
    """
    with _harness_log_on_stderr():
        return _sweep(cfg, older_than_h, dry_run)


def _sweep(cfg: HarnessConfig, older_than_h: float | None, dry_run: bool) -> int:
    from harness.backends import create_backend

    backend = create_backend(cfg)
    try:
        doomed = [
            r
            for r in backend.list_owned_resources()
            if naming.is_owned(r.tags) and naming.is_expired(r.tags, older_than_h=older_than_h)
        ]
        status = _delete_all(backend, doomed, dry_run, cfg)
    finally:
        backend.close(stop_owned=True)
    verb = "would remove" if dry_run else "removed"
    for directory in lifecycle.remove_dead_runs(cfg.workspace_dir, dry_run):
        print(f"{verb} the directory of finished run {directory.name}: {directory}")
    if cfg.backend == "local":
        from harness.backends.local.sweep import stale_model_builds

        hours = cfg.resource_ttl_h if older_than_h is None else older_than_h
        for path in stale_model_builds(cfg.model_cache_dir, hours, dry_run):
            print(f"{verb} the model cache's stale build {path}")
    return status


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


def _delete_all(
    backend: Backend, resources: Sequence[OwnedResource], dry_run: bool, cfg: HarnessConfig
) -> int:
    verb = "would delete" if dry_run else "deleting"
    failures = skipped = 0
    for resource in resources:
        run_id = resource.tags.get(naming.TAG_RUN_ID)
        expires = resource.tags.get(naming.TAG_EXPIRES)
        kind = ResourceKind(resource.kind).value
        if run_id and lifecycle.run_is_alive(cfg.workspace_dir, run_id):  # checked just before
            skipped += 1
            print(f"skipping {kind} {resource.name}: run {run_id} is still running")
            continue
        print(f"{verb} {kind} {resource.name} (run {run_id}, expires {expires})")
        if dry_run:
            continue
        try:
            delete_resource(backend, resource.kind, resource.name, cfg.delete_timeout_s)
        except Exception as exc:  # a janitor reports each failure and goes on to the next
            failures += 1
            print(
                f"error: could not delete {kind} {resource.name}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
    print(
        f"sweep: {len(resources)} expired owned resource(s), {skipped} of live runs skipped, "
        f"{failures} failed"
    )
    return EXIT_DELETE_FAILED if failures else 0
