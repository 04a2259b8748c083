"""The inference server process: start it, wait until it serves, stop it.

``azmlinfsrv`` runs in its own process group (its gunicorn workers would outlive a killed
master), bound to 127.0.0.1 through ``entry.py``, with the harness's scoring script. Readiness
is ``GET /`` answering 200, polled with a short per-request timeout because a slow ``init()``
accepts the connection and then hangs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from harness.backends.local.defaults import DEVICE_ENV, KEYS_ENV
from harness.backends.local.endpoints import EndpointState, check_port_free
from harness.backends.local.entry import BIND_HOST
from harness.backends.local.env import child_env, python
from harness.backends.local.process import DEFAULT_GRACE_S, log_tail, spawn, stop_group
from harness.errors import DeploymentError
from harness.waiting import Deadline

PROBE_TIMEOUT_S = 1.0
EXIT_INIT_FAILED = 3
SCORE_SCRIPT = Path(__file__).resolve().with_name("score.py")


def start(
    state: EndpointState, model_dir: Path, device: str, log: Path, request_timeout_ms: int
) -> subprocess.Popen[bytes]:
    """Start the server for ``state``'s port and keys; returns at once (see ``wait_ready``)."""
    check_port_free(state.port)
    argv = [
        python(),
        "-m",
        "harness.backends.local.entry",
        "--port",
        str(state.port),
        "--model_dir",
        str(model_dir.resolve()),
        "--entry_script",
        str(SCORE_SCRIPT),
        "--worker_count",
        "1",
    ]
    env = child_env(
        {
            "GUNICORN_CMD_ARGS": "--no-control-socket",
            KEYS_ENV: ",".join(state.keys),
            DEVICE_ENV: device,
            "SCORING_TIMEOUT_MS": str(request_timeout_ms),
            "WORKER_TIMEOUT": str(max(30, request_timeout_ms // 1000 + 10)),
            "AML_APP_ROOT": str(log.parent),
        }
    )
    return spawn(argv, log, env, cwd=log.parent)


def wait_ready(
    proc: subprocess.Popen[bytes], state: EndpointState, log: Path, timeout_s: float
) -> None:
    """Return once ``GET /`` answers 200; DeploymentError (with the log tail) otherwise."""
    url = f"http://{BIND_HOST}:{state.port}/"

    def ready() -> bool:
        code = proc.poll()
        if code is not None:
            raise _exited(state, code, log)
        return _healthy(url)

    if Deadline(timeout_s).until(ready, 0.2):
        return
    stop_group(proc.pid)
    proc.wait()
    raise DeploymentError(
        f"deployment of endpoint {state.name} did not become ready within {timeout_s:.0f} s "
        f"(GET {url} never answered 200), so the server was stopped; log {log}:\n{log_tail(log)}\n"
        "raise the deployment timeout (--deployment-timeout) or look for a hanging init() above"
    )


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=PROBE_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


def _exited(state: EndpointState, code: int, log: Path) -> DeploymentError:
    if code == EXIT_INIT_FAILED:
        what = "the scoring script failed to load (init() raised)"
    else:
        what = f"the inference server exited with code {code}"
    return DeploymentError(
        f"deployment of endpoint {state.name} failed: {what} before serving on port {state.port}; "
        f"log {log}:\n{log_tail(log)}\nfix the cause shown in the log and deploy again"
    )


def stop(state: EndpointState, grace_s: float = DEFAULT_GRACE_S) -> bool:
    """Stop the endpoint's server group (SIGTERM, then SIGKILL after ``grace_s``); True if it
    was running."""
    return stop_group(state.pgid, grace_s)
