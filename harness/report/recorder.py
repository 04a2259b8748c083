"""The run recorder: every process of a run appends what it saw to one JSON Lines file.

pytest-xdist workers, the controlling process and a run cut short by Ctrl-C all write to the
same file, one JSON object per line, each append under a file lock (``filelock``) and in a
single ``write``, so lines never interleave and whatever happened before a crash is kept. The
report is built from the file afterwards (``read_events`` -> ``build_report``), by the run
itself or by anyone later.

Secrets never reach the file: every event goes through ``harness.redaction`` first.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.progress import worker_id
from harness.redaction import redact
from harness.report.events import check_event

logger = logging.getLogger("harness")
Event = dict[str, Any]
VERSIONED_DISTRIBUTIONS = (
    "llm-finetune-harness",
    "pytest",
    "pytest-xdist",
    "azure-ai-ml",
    "azure-identity",
    "datasets",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "mlflow-skinny",
    "azureml-inference-server-http",
    "matplotlib",
    "sacrebleu",
)
_ERROR_CHARS = 500


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions of the harness and its key libraries, read without importing them
    (parsing their metadata takes a fraction of a second: once per process)."""
    versions: dict[str, str] = {}
    for name in VERSIONED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class Recorder:
    """Appends run events to ``path`` (a ``.jsonl`` file); safe from any process.

    One file holds one run: use e.g. ``<report dir>/events/<run id>.jsonl`` so that every
    process of the run finds it from the run id alone.
    """

    def __init__(
        self, path: Path, secrets: tuple[str, ...] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.secrets = list(secrets)
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path) + ".lock")

    def add_secret(self, value: str) -> None:
        """Redact this exact value (e.g. an endpoint key) from every later event."""
        self.secrets.append(value)

    def record(self, kind: str, **fields: Any) -> Event:
        """Append one event (see ``harness.report.events.EVENT_KINDS``); returns what was stored."""
        check_event(kind, fields)
        if kind == "run_started" and "versions" not in fields:
            fields["versions"] = dict(library_versions())
        event: Event = {
            "kind": kind,
            "at": self.clock(),
            "pid": os.getpid(),
            "worker": worker_id(),
            **redact(fields, self.secrets),
        }
        line = json.dumps(event, default=str, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        return event


def read_events(path: Path) -> tuple[list[Event], int]:
    """(events in file order, count of unreadable lines) from a recorder's file.

    A line cut short by a killed process is skipped and counted, not fatal: the report of a
    broken run is the one most worth reading. A missing file is an empty run.
    """
    if not path.is_file():
        return [], 0
    events: list[Event] = []
    unreadable = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if isinstance(event, Mapping) and isinstance(event.get("kind"), str):
            events.append(dict(event))
        else:
            unreadable += 1
    if unreadable:
        logger.warning("%s: skipped %d unreadable event line(s)", path, unreadable)
    return events, unreadable
