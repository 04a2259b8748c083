"""Starting and stopping child processes as whole process groups.

Every child (training job, inference server) gets its own session, so that stopping it means
signalling the group: killing a gunicorn master alone leaves its workers serving the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from harness.waiting import Deadline

DEFAULT_GRACE_S = 10.0


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


def stop_group(pgid: int | None, grace_s: float = DEFAULT_GRACE_S) -> bool:
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


def reap(proc: subprocess.Popen[bytes] | None) -> int | None:
    """Collect a child's exit status (no zombies left behind); None while it runs."""
    return None if proc is None else proc.poll()


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
