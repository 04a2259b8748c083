"""What a run says while it runs: progress lines for people (logger ``harness``, which pytest's
live logging shows) and the run's event record for the report, from one call.

A fixture wraps each workflow step in ``progress.stage(...)``: the step's start and end (with
its duration and outcome) are logged and recorded together, so the timeline in the report and
the lines a person watched at night always agree.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.waiting import short_duration

if TYPE_CHECKING:
    from harness.report import Recorder

log = logging.getLogger("harness")


def events_path(report_dir: Path, run_id: str) -> Path:
    """Where every process of run ``run_id`` appends its events."""
    return report_dir / "events" / f"{run_id}.jsonl"


QUIET_LIBRARIES = (
    "azure",
    "urllib3",
    "msal",
    "mlflow",
    "alembic",
    "filelock",
    "matplotlib",
    "fsspec",
    "datasets",
    "httpx",
    "git",
    "PIL",
)


def quiet_libraries() -> None:
    """Live logs at INFO are for the harness's progress; libraries' INFO chatter (azure-core
    logs every HTTP request) stays out unless the user set their loggers' levels. Called when
    a session starts using the harness, never for a user's unrelated tests."""
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(logging.WARNING)


class _LazyFile(logging.FileHandler):
    """Opens (and makes the directory of) its file at the first line, not before."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def worker_id() -> str:
    """``gw0``, ``gw1``... in a pytest-xdist worker process, ``main`` elsewhere: the label of
    this process's log lines and report events."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def is_xdist_worker(config: Any) -> bool:
    """True when this pytest session is a pytest-xdist worker (its config carries the
    controller's ``workerinput``). Asked of the session, not of the environment: a session
    that pytester runs inside a worker process is no worker itself."""
    return hasattr(config, "workerinput")


class _Worker(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = worker_id()
        return True


def log_to_file(path: Path) -> logging.Handler:
    """Every process's progress lines, appended to one file (``harness.log`` beside the
    report): under pytest-xdist the workers' live logs never reach the terminal."""
    handler = _LazyFile(path, encoding="utf-8", delay=True)
    handler.addFilter(_Worker())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(worker)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)  # progress is INFO; the root logger would drop it
    log.addHandler(handler)
    return handler


@dataclass
class Progress:
    """Logs and records a run's steps into the events file ``path`` (None records nothing).

    The file is created by the first event of a step, starting with ``run_started`` (from
    ``start``): a pytest session that never uses the harness (a user's unrelated tests, with
    the plugin installed) writes no events, no log and no report.
    """

    path: Path | None = None
    start: dict[str, Any] = field(default_factory=dict)
    _recorder: Recorder | None = None
    _secrets: list[str] = field(default_factory=list)
    _open: dict[str, float] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        """Whether any process of the run has recorded a step yet."""
        return self.path is not None and self.path.exists()

    def record(self, kind: str, **fields: Any) -> None:
        if self.path is None:
            return
        if self._recorder is None:
            from harness.report import Recorder

            first = not self.used
            self._recorder = Recorder(self.path, tuple(self._secrets))
            if first:
                self._recorder.record("run_started", **self.start)
        self._recorder.record(kind, **fields)

    def record_if_used(self, kind: str, **fields: Any) -> None:
        """For what every pytest session has (test outcomes, its end): only in a harness run."""
        if self.used:
            self.record(kind, **fields)

    def add_secret(self, value: str) -> None:
        """A value that must never reach the record (an endpoint key)."""
        self._secrets.append(value)
        if self._recorder is not None:
            self._recorder.add_secret(value)

    def begin(self, name: str, detail: str) -> None:
        """A stage that ends in another fixture (the endpoint overlaps the training)."""
        self._open[name] = time.monotonic()
        log.info("%s: started (%s)", name, detail)
        self.record("stage_started", name=name)

    def end(self, name: str, outcome: str = "ok", error: str = "") -> None:
        took = short_duration(time.monotonic() - self._open.pop(name, time.monotonic()))
        said = f" ({error})" if error else ""
        log.log(
            logging.INFO if outcome == "ok" else logging.WARNING,
            "%s: %s after %s%s",
            name,
            "done" if outcome == "ok" else outcome,
            took,
            said,
        )
        self.record(
            "stage_ended", name=name, outcome=outcome, **({"error": error} if error else {})
        )

    @contextmanager
    def stage(self, name: str, detail: str) -> Iterator[None]:
        """Log and record a step's start, end, duration and outcome."""
        self.begin(name, detail)
        try:
            yield
        except BaseException as exc:
            self.end(name, *_outcome(exc))
            raise
        self.end(name)


def _outcome(exc: BaseException) -> tuple[str, str]:
    import pytest

    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "interrupted", type(exc).__name__
    if isinstance(exc, pytest.skip.Exception):
        return "skipped", str(exc)[:500]
    return "failed", f"{type(exc).__name__}: {exc}"[:500]
