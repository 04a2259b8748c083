"""The child processes the local backend starts: their environment, start and stop.

Every child (training job, inference server, model build) gets its own session, so that
stopping it means signalling the group: killing a gunicorn master alone leaves its workers
serving the port. Children never reach the Hugging Face hub (a hub id would retry for tens of
seconds before failing) and import this checkout of the harness even when it is not installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

import harness
from harness.waiting import Deadline

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
PROJECT_ROOT = Path(harness.__file__).resolve().parent.parent
STOP_GRACE_S = 10.0  # between SIGTERM and SIGKILL, unless the caller has less time


def python() -> str:
    """The interpreter running the harness: children share its installed packages."""
    return sys.executable


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of this process's environment, offline, with the harness importable."""
    env = dict(os.environ)
    env.update(OFFLINE)
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env


def set_offline() -> None:
    """For code that loads models in this process: the same offline switches as children."""
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)


def spawn(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie counts as dead: it no longer does anything)."""
    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def group_alive(pgid: int | None) -> bool:
    """True while any process of the group ``pgid`` runs."""
    if not pgid:
        return False
    return any(_in_group(proc, pgid) for proc in psutil.process_iter())


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    with contextlib.suppress(psutil.Error, OSError):
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    return False


def stop_group(pgid: int | None, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM the group, wait up to ``grace_s``, then SIGKILL it; True if it was running."""
    if not group_alive(pgid):
        return False
    assert pgid is not None
    _signal_group(pgid, signal.SIGTERM)
    if not Deadline(grace_s).until(lambda: not group_alive(pgid), 0.05):
        _signal_group(pgid, signal.SIGKILL)
        Deadline(5.0).until(lambda: not group_alive(pgid), 0.05)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for error messages; '' when there is none."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
