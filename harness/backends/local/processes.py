"""The child processes the local backend starts: their environment, start, identity and stop.

Every child (training job, inference server, model build) gets its own session, so that
stopping it means signalling its group: killing a gunicorn master alone leaves its workers
serving the port. Children never reach the Hugging Face hub (a hub id would retry for tens of
seconds before failing) and import this checkout of the harness even when it is not installed.

Pids are reused. A state file written by a run that died long ago may name a pid that now
belongs to someone else, so a process is only ever signalled after proving it is the one the
harness started (``ProcessRecord``): same start time and command line for the group leader, and
for every member the random token that ``spawn`` put in the leader's environment, which its
children (gunicorn workers, torchrun ranks) inherit and no stranger has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import harness
from harness.backends.local.offline import OFFLINE
from harness.waiting import Deadline

PROJECT_ROOT = Path(harness.__file__).resolve().parent.parent
STOP_GRACE_S = 10.0  # between SIGTERM and SIGKILL, unless the caller has less time
TOKEN_ENV = "HARNESS_PROCESS_TOKEN"  # in every spawned process's environment, inherited
START_TOLERANCE_S = 0.05  # psutil's start times are rounded to the clock tick
UNTOLD_S = 2.0  # how long stop's first look waits for a member in the middle of its exec
log = logging.getLogger("harness")


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


def scratch_env(tmp_dir: Path, caches: Path) -> dict[str, str]:
    """A child's temporary directory (created) and the compilers' caches, both in the workspace.

    Whatever the child and its children put in "the" temp dir (torchrun's ``torchelastic_*``,
    the trainer's and the server's own files) lands in ``tmp_dir``, which goes with the job or
    endpoint it belongs to, even when the run was killed and the sweep deletes it: nothing
    lands in the machine's shared /tmp, where no one could tell whose it is. The compilers'
    caches (torch inductor, triton) are shared between runs on purpose and live in
    ``caches``, which the sweep never deletes.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    temp = {name: str(tmp_dir) for name in ("TMPDIR", "TMP", "TEMP")}
    return {**temp, **compiler_caches(caches)}


def compiler_caches(caches: Path) -> dict[str, str]:
    """Where torch inductor and triton keep what they compiled: the workspace's caches
    (their defaults are the shared /tmp and the home directory)."""
    return {
        "TORCHINDUCTOR_CACHE_DIR": str(caches / "torchinductor"),
        "TRITON_CACHE_DIR": str(caches / "triton"),
    }


def use_compiler_caches(caches: Path) -> None:
    """For the harness process itself (torch loads models here too), unless the user chose
    other caches; the first backend of a process decides."""
    for name, value in compiler_caches(caches).items():
        os.environ.setdefault(name, value)


@dataclass(frozen=True)
class ProcessRecord:
    """What a state file remembers of a started process: enough to prove it is still that one.

    The process leads its own group and session (``spawn``), so its pid is the group id.
    """

    pid: int
    started: float  # psutil's create_time
    cmdline: tuple[str, ...]
    token: str  # the value of TOKEN_ENV in its environment

    @property
    def pgid(self) -> int:
        return self.pid

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pgid": self.pid,
            "started": self.started,
            "cmdline": list(self.cmdline),
            "token": self.token,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ProcessRecord | None:
        """None for a record without proof (written before records had one): never signalled."""
        if not data or not all(k in data for k in ("pid", "started", "cmdline", "token")):
            return None
        return cls(
            int(data["pid"]), float(data["started"]), tuple(data["cmdline"]), str(data["token"])
        )

    def describe(self) -> str:
        return _describe(self.pid, self.cmdline, self.started)

    @classmethod
    def of_this_process(cls) -> ProcessRecord:
        """The calling process (a training rank that leads its own session) as a record."""
        me = psutil.Process()
        return cls(me.pid, me.create_time(), tuple(me.cmdline()), os.environ.get(TOKEN_ENV, ""))


def _describe(pid: int, cmdline: Sequence[str], started: float) -> str:
    return f"pid {pid} `{' '.join(cmdline)[:120]}` started {started:.2f}"


class Child(subprocess.Popen[bytes]):
    """A spawned process and its record (written to state files for other processes)."""

    record: ProcessRecord


def spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path) -> Child:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    with log_path.open("ab") as sink:
        child = Child(
            list(argv),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**env, TOKEN_ENV: token},
            cwd=cwd,
            start_new_session=True,
        )
    child.record = ProcessRecord(child.pid, _start_time(child.pid), tuple(argv), token)
    return child


def die_with_parent() -> None:
    """``preexec_fn`` of a child that only makes sense while the harness waits for it (the
    model build): the kernel kills it when the harness dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _prctl() -> Any:
    """libc's prctl, resolved in the parent: nothing may be loaded between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


_PR_SET_PDEATHSIG = 1
_PRCTL = _prctl()


def _start_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:  # already gone (and unreaped): nothing will ever match it
        return 0.0


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie counts as dead: it no longer does anything)."""
    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of group ``pgid``, whoever they belong to."""
    return [proc for proc in psutil.process_iter() if _in_group(proc, pgid)]


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    with contextlib.suppress(psutil.Error, OSError):
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    return False


def is_ours(proc: psutil.Process, record: ProcessRecord) -> bool | None:
    """Whether ``proc`` is the recorded process or one of its descendants; None when it is
    exiting (its environment is already gone) and cannot be told either way."""
    try:
        environ = proc.environ()
        if not environ:
            return None
        if environ.get(TOKEN_ENV) != record.token:
            return False
        if proc.pid != record.pid:
            return True
        same_start = abs(proc.create_time() - record.started) <= START_TOLERANCE_S
        return same_start and tuple(proc.cmdline()) == record.cmdline
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None
    except psutil.AccessDenied:  # another user's, or ours in the middle of an exec
        return None if _same_user(proc) else False
    except (psutil.Error, OSError):
        return False


def _same_user(proc: psutil.Process) -> bool:
    """Our own processes are unreadable for a moment while they exec (not dumpable yet), when
    the harness runs without CAP_SYS_PTRACE, as root in a container does."""
    try:
        return bool(proc.uids().real == os.getuid())
    except (psutil.Error, OSError):
        return False


def owned_members(record: ProcessRecord | None) -> list[psutil.Process]:
    """The live processes of the record's group that are provably the harness's."""
    if record is None:
        return []
    return [proc for proc in group_members(record.pgid) if is_ours(proc, record)]


def alive(record: ProcessRecord | None) -> bool:
    return bool(owned_members(record))


def strangers(record: ProcessRecord) -> list[psutil.Process]:
    """Live processes in the record's group that are not the harness's (the pid was reused)."""
    return [proc for proc in group_members(record.pgid) if is_ours(proc, record) is False]


def stop(record: ProcessRecord | None, grace_s: float = STOP_GRACE_S, what: str = "") -> bool:
    """SIGTERM the record's processes, wait up to ``grace_s``, then SIGKILL them; True if any
    was running. Only processes proven to be the harness's are signalled; a stranger that
    now holds the pid or group is left alone, with a warning naming it."""
    if record is None:
        return False
    _warn_strangers(record, what)
    signalled: list[psutil.Process] = []

    def signal_new(sig: signal.Signals) -> None:
        """Members not signalled yet: a child may be forked while its parent is stopped. The
        first time, while the leader is proven ours, the whole group at once: a member in the
        middle of its exec cannot be read, let alone proven, but is in the group."""
        members = owned_members(record)
        fresh = [proc for proc in members if proc not in signalled]
        if not signalled and any(proc.pid == record.pid for proc in members):
            _signal_group(record.pgid, sig)
        else:
            _signal_all(fresh, sig)
        signalled.extend(fresh)

    def gone() -> bool:
        """No signalled process runs, and then a fresh look finds no member of the group that
        is ours or still to be told apart (a child in the middle of its exec shows no
        environment for a moment). The look comes after the check: a child forked after
        ``signal_new`` looked, by a parent that has exited since, is found here and signalled
        on the next round (a loaded machine can stall a look over /proc for a second)."""
        signal_new(signal.SIGTERM)
        return not _running(signalled) and not _not_strangers(record)

    def told() -> bool:
        """The first SIGTERM went out, or no member is left to tell apart. A child between
        fork and exec (its leader killed) shows no environment for a moment: neither ours
        nor a stranger yet, so the look is repeated instead of answering "none running"."""
        signal_new(signal.SIGTERM)
        return bool(signalled) or not _not_strangers(record)

    Deadline(UNTOLD_S).until(told, 0.01)
    if not signalled:
        return False
    if not Deadline(grace_s).until(gone, 0.05):
        _signal_all([*_running(signalled), *owned_members(record)], signal.SIGKILL)
        Deadline(5.0).until(gone, 0.05)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Only for a group whose leader is proven ours: it leads its own session (``spawn``), so
    every member of its group is one of its descendants."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _not_strangers(record: ProcessRecord) -> list[psutil.Process]:
    """Live members of the record's group that are ours, or cannot be told ours or not yet."""
    return [proc for proc in group_members(record.pgid) if is_ours(proc, record) is not False]


def _running(processes: Sequence[psutil.Process]) -> list[psutil.Process]:
    """Those still running, each once (psutil compares pid and start time: no reuse)."""
    running: list[psutil.Process] = []
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            if proc not in running and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
    return running


def _warn_strangers(record: ProcessRecord, what: str) -> None:
    for proc in strangers(record):
        with contextlib.suppress(psutil.Error):
            found = _describe(proc.pid, proc.cmdline(), proc.create_time())
            log.warning(
                "not stopping %s in process group %d%s: it is not the harness's (the pid was "
                "reused; recorded %s)",
                found,
                record.pgid,
                f" of {what}" if what else "",
                record.describe(),
            )


def _signal_all(processes: Sequence[psutil.Process], sig: signal.Signals) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def exit_description(code: int | None) -> str:
    """How a process ended, as messages say it: ``exit code 3``, ``exit code -9: killed by
    SIGKILL``; only its parent can tell (None: another process started it)."""
    if code is None:
        return "exit code unknown: another process started it"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code}: killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


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
