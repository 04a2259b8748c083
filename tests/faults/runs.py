"""Real local runs in subprocesses, and what they leave behind: the fault tests' tools."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "tests" / "e2e" / "test_workflow.py"  # the workflow; not the local-only extras
HERE = Path(__file__).resolve().parent
RUN_TIMEOUT_S = 900.0  # a whole run on a loaded 2-core machine, tiny model build included


def environment(workspace: Path) -> dict[str, str]:
    """This checkout, this workspace (the run report and the model cache next to it: the first
    run builds the default model as on a fresh machine), its own temp dir (so that what a run
    leaves in "the" temp dir can be seen), and none of the caller's harness settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_"))}
    paths = [str(REPO), str(HERE), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    temp = temp_dir(workspace)
    temp.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(paths),
        "HARNESS_WORKSPACE": str(workspace),
        "HARNESS_REPORT_DIR": str(report_dir(workspace)),
        **{name: str(temp) for name in ("TMPDIR", "TMP", "TEMP")},
        "HARNESS_MODEL_CACHE": str(workspace.parent / f"{workspace.name}-model-cache"),
    }


def report_dir(workspace: Path) -> Path:
    return workspace.parent / f"{workspace.name}-report"


def temp_dir(workspace: Path) -> Path:
    """The temp dir of the runs on ``workspace`` (TMPDIR of pytest, the sweep and all their
    children, unless the harness gives a child another)."""
    return workspace.parent / f"{workspace.name}-tmp"


def temp_leftovers(workspace: Path) -> list[str]:
    """What the runs left in their temp dir; pytest's own ``pytest-of-<user>`` (tmp_path's
    base, which pytest itself prunes to the last three runs) aside."""
    found = sorted(temp_dir(workspace).glob("*"))
    return [f"temp dir: {p}" for p in found if not p.name.startswith("pytest-of-")]


@dataclass
class LocalRun:
    """``pytest -m e2e`` on the local backend in its own session, as CI starts it (so that
    a test can signal it, or its whole group, as CI or a terminal does), with its output in
    a file. The endpoint keys it creates are collected while it runs: their state files are
    gone afterwards, and the output must not hold them."""

    workspace: Path
    log: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    keys: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, workspace: Path, *args: str, env: Mapping[str, str] | None = None) -> LocalRun:
        log = workspace.parent / f"{workspace.name}-run-{time.monotonic_ns()}.log"
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(E2E),
            "-m",
            "e2e",
            "-p",
            "no:cacheprovider",
            *args,
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**environment(workspace), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        run = cls(workspace, log, process)
        threading.Thread(target=run._collect_keys, daemon=True).start()
        return run

    def _collect_keys(self) -> None:
        while self.process.poll() is None:
            self.keys.update(endpoint_keys(self.workspace))
            time.sleep(0.1)

    def signal(self, sig: signal.Signals, group: bool = False) -> None:
        """To pytest alone (a CI runner signalling its child), or to its whole process
        group (a terminal's Ctrl-C); job and server processes have their own sessions."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            message = f"run did not end within {timeout_s:.0f} s:\n{self.output}"
            raise AssertionError(message) from None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def until(self, condition: Callable[[], bool], what: str, timeout_s: float = 600) -> None:
        """Wait for ``condition`` while the run lives; fail with its output otherwise."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"run ended before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout_s:.0f} s:\n{self.output}")
            time.sleep(0.1)


def endpoint_keys(workspace: Path) -> set[str]:
    keys: set[str] = set()
    for path in (workspace / "endpoints").glob("*.json"):
        try:
            keys.update(json.loads(path.read_text())["keys"])
        except (OSError, ValueError, KeyError):
            continue  # being written or deleted
    return keys


def job_running(workspace: Path) -> bool:
    """A fine-tune job process has started training (it writes Running itself)."""
    return any(_status(path) == "Running" for path in (workspace / "jobs").glob("*/status.json"))


def _status(path: Path) -> str:
    try:
        return str(json.loads(path.read_text()).get("status"))
    except (OSError, ValueError):
        return ""


def server_serving(workspace: Path) -> bool:
    for path in (workspace / "endpoints").glob("*.json"):
        try:
            deployment = json.loads(path.read_text()).get("deployment", {})
        except (OSError, ValueError):
            continue
        if deployment.get("provisioning_state") == "Succeeded":
            return True
    return False


def sweep(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "sweep", *args],
        cwd=REPO,
        env=environment(workspace),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def harness_processes(workspace: Path) -> list[str]:
    """Processes of this workspace still running: jobs, servers (and their workers), builds,
    and pytest processes of its runs (an xdist worker whose controller was killed)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.pid != os.getpid() and (str(workspace) in cmdline or _runs_on(proc, workspace)):
            found.append(f"pid {proc.pid}: {cmdline[:200]}")
    return found


def _runs_on(proc: psutil.Process, workspace: Path) -> bool:
    try:
        return bool(proc.environ().get("HARNESS_WORKSPACE") == str(workspace))
    except (psutil.Error, OSError):
        return False


def leftovers(workspace: Path) -> list[str]:
    """Everything a run left that a finished, cleaned-up run would not: state files, job
    directories, run directories, artifacts of deleted runs and models, processes, files in
    the temp dir, and owned registry entries and MLflow runs (the sweep's dry run)."""
    return files_and_processes(workspace) + owned_resources(workspace)


def files_and_processes(workspace: Path) -> list[str]:
    """The part of ``leftovers`` that needs no MLflow (quick)."""
    left = [
        str(p)
        for folder in ("endpoints", "jobs", "runs")
        for p in sorted((workspace / folder).glob("*"))
    ]
    for experiment in (workspace / "artifacts").glob("*"):
        if experiment.name != "harness-foundation-models":
            left += [str(p) for p in sorted(experiment.glob("*"))]
    return left + harness_processes(workspace) + temp_leftovers(workspace)


def owned_resources(workspace: Path) -> list[str]:
    if not (workspace / "mlflow.db").exists():
        return []
    listing = sweep(workspace, "--older-than", "0h", "--dry-run")
    return [line for line in listing.stdout.splitlines() if line.startswith("would delete")]


def python_tracebacks(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Traceback (most recent call last)" in line]


def leaked(keys: Sequence[str] | set[str], *texts: str) -> list[str]:
    return [key for key in keys for text in texts if key in text]


def files_holding(keys: Sequence[str] | set[str], *roots: Path) -> list[str]:
    """Every file under ``roots`` (binary ones too: the MLflow database, model weights)
    holding one of ``keys``."""
    needles = [key.encode() for key in keys]
    found = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                found += [str(path) for needle in needles if needle in data]
    return found


# what a token, key or signature looks like once the redaction's patterns point at it: a long
# run of base64/URL-safe characters with letters and digits (not ``endpoint_key(online_endpoint)``)
_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9+/=_.~-]{16,}")


def secret_shaped(texts: Mapping[str, str]) -> list[str]:
    """Lines that still hold a secret-shaped string (``Bearer ...``, ``key=...``, a SAS
    signature, ...): the redaction's own patterns cut a token-shaped value out of them. What
    they cut that is no token is left alone: pytest's traceback of the harness's own source
    (``key = backend.endpoint_key(online_endpoint)``), a masked ``key = Secret('***')``, a
    ``key = None``."""
    from harness.redaction import redact_text

    return [
        f"{name}: {line[:200]}"
        for name, text in texts.items()
        for line in text.splitlines()
        if _cuts_a_token(line, redact_text(line))
    ]


def _cuts_a_token(line: str, redacted: str) -> bool:
    kept = set(_TOKEN_SHAPED.findall(redacted))
    cut = [t for t in _TOKEN_SHAPED.findall(line) if t not in kept]
    return any(re.search(r"[A-Za-z]", t) and re.search(r"\d", t) for t in cut)


def text_files(*roots: Path) -> dict[str, str]:
    """The text files (logs, JSON, Markdown, HTML, XML) under ``roots``, by path."""
    suffixes = {".log", ".json", ".jsonl", ".md", ".html", ".xml", ".txt", ".yaml"}
    return {
        str(path): path.read_text(errors="replace")
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in suffixes
    }


def check_clean_exit(run: LocalRun, expected: int | Sequence[int], **extra: Any) -> str:
    """The run's output, after checking its exit status, that it printed no Python
    traceback and no endpoint key, and that it created at least one endpoint key to check."""
    output = run.output
    allowed = [expected] if isinstance(expected, int) else list(expected)
    assert run.process.returncode in allowed, output
    assert not python_tracebacks(output), output
    assert run.keys, "the run created no endpoint: nothing to look for"
    assert not leaked(run.keys, output, *extra.values()), "endpoint key in the output"
    return output


def job_launcher(workspace: Path) -> psutil.Process:
    """The running job's process (the launcher of a torchrun job), by its state file."""
    for path in (workspace / "jobs").glob("*/process.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
            return psutil.Process(int(json.loads(path.read_text())["pid"]))
    raise AssertionError(f"no job process recorded in {workspace / 'jobs'}")


def job_worker(workspace: Path) -> psutil.Process:
    """The pytest-xdist worker that submitted the running job (the job's parent)."""
    parent = job_launcher(workspace).parent()
    assert parent is not None, "the job has no parent: its worker is already gone"
    return parent


def server_leader(workspace: Path) -> psutil.Process:
    """The serving endpoint's inference server (the leader of its process group)."""
    for path in (workspace / "endpoints").glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
            deployment = json.loads(path.read_text())["deployment"]
            return psutil.Process(int(deployment["process"]["pid"]))
    raise AssertionError(f"no server recorded in {workspace / 'endpoints'}")


def kill_group(proc: psutil.Process) -> None:
    """SIGKILL to the process and its group (a server's gunicorn workers die with it, as
    under the OOM killer); an xdist worker shares the controller's group, so only itself."""
    group = os.getpgid(proc.pid)
    if group == proc.pid:
        os.killpg(group, signal.SIGKILL)
    else:
        proc.kill()
