"""A pytest plugin for a fault test (``-p tests.faults.signal_at_build``): SIGTERM arrives while
the tiny model is being built, at a chosen moment after the build starts
(``SIGNAL_AT_BUILD_AFTER_S``), as CI's cancel would. In a pytest-xdist worker the signal goes
to the controller, which passes it on to its workers, as when CI signals pytest."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from harness.backends.local import models

_build = models._run_builder


def _signalled_build(ws: Any, dataset: Path, out: Path) -> None:
    target = os.getppid() if "PYTEST_XDIST_WORKER" in os.environ else os.getpid()
    after_s = float(os.environ.get("SIGNAL_AT_BUILD_AFTER_S", "0"))
    threading.Timer(after_s, os.kill, (target, signal.SIGTERM)).start()
    _build(ws, dataset, out)


models._run_builder = _signalled_build  # type: ignore[assignment]
