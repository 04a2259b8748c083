"""Deploying a registered model to a local endpoint: the inference server process, its
readiness, and taking it down again.

``azmlinfsrv`` runs in its own process group (its gunicorn workers would outlive a killed
master), bound to 127.0.0.1 through ``python -m harness.backends.local.server``, with the
harness's scoring script. Readiness is ``GET /`` answering 200, polled with a short per-request
timeout because a slow ``init()`` accepts the connection and then hangs. The server's process
group is written to the endpoint's state file before waiting for it, so even a harness killed
during the wait leaves a server that the sweep finds.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from harness.backends.base import REQUEST_TIMEOUT_MS, Deployment, RegisteredModel
from harness.backends.local import compute, endpoints, registry
from harness.backends.local.endpoints import EndpointState, check_port_free
from harness.backends.local.processes import (
    STOP_GRACE_S,
    Child,
    alive,
    child_env,
    exit_description,
    log_tail,
    python,
    scratch_env,
    spawn,
)
from harness.backends.local.processes import stop as stop_process
from harness.backends.local.server import (
    BIND_HOST,
    DEVICE_ENV,
    EXIT_INIT_FAILED,
    KEYS_ENV,
    STARTUP_ENV,
)
from harness.backends.local.workspace import Workspace
from harness.errors import DeploymentError
from harness.naming import TAG_RUN_ID
from harness.waiting import Deadline, Heartbeat

PROBE_TIMEOUT_S = 1.0
SCORE_SCRIPT = Path(__file__).resolve().parent / "server" / "score.py"


def deploy(
    ws: Workspace,
    endpoint: str,
    model: RegisteredModel,
    name: str,
    instance_type: str,
    tags: Mapping[str, str],
    timeout_s: float,
) -> tuple[Deployment, Child]:
    """Serve the registered ``model`` behind ``endpoint`` on the instance type's device."""
    version = registry.require_version(ws, model.name, model.version)
    fields = {
        "name": name,
        "model_id": model.id,
        "instance_type": instance_type,
        "tags": dict(tags),
    }
    device = compute.serving_device(instance_type)
    return start(ws, endpoint, registry.version_dir(version), fields, device, timeout_s)


def start(
    ws: Workspace,
    endpoint: str,
    model_dir: Path,
    fields: dict[str, Any],
    device: str,
    timeout_s: float,
) -> tuple[Deployment, Child]:
    """Start the server for ``endpoint``, wait until it serves; ``fields``: name, model_id..."""
    state = endpoints.require(ws, endpoint)
    stop(state)  # one deployment per local endpoint: a new one replaces it
    log = log_path(ws, endpoint)
    scratch = scratch_env(tmp_dir(ws, endpoint), ws.caches)
    scratch[STARTUP_ENV] = str(startup_marks(ws, endpoint))
    proc = start_server(state, model_dir, device, log, REQUEST_TIMEOUT_MS, scratch)
    record = {
        **fields,
        "process": proc.record.to_dict(),
        "log": str(log),
        "provisioning_state": "Creating",
        "traffic": 0,
    }
    state = endpoints.save(ws, replace(state, deployment=record))
    try:
        wait_ready(proc, state, log, timeout_s)
    except DeploymentError:
        _update(ws, state, provisioning_state="Failed")
        raise
    state = _update(ws, state, provisioning_state="Succeeded", traffic=100)
    return handle(state), proc


def _update(ws: Workspace, state: EndpointState, **changes: Any) -> EndpointState:
    return endpoints.save(ws, replace(state, deployment={**state.deployment, **changes}))


def handle(state: EndpointState) -> Deployment:
    d = state.deployment
    if not d:
        raise DeploymentError(
            f"endpoint {state.name} has no deployment; deploy a model to it first"
        )
    return Deployment(
        name=d["name"],
        endpoint_name=state.name,
        model_id=d["model_id"],
        instance_type=d["instance_type"],
        provisioning_state=d["provisioning_state"],
        traffic_percent=int(d.get("traffic", 0)),
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )


def delete(ws: Workspace, name: str, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the endpoint's server and remove its state; False if there was no such endpoint."""
    state = endpoints.load(ws, name)
    if state is None:
        return False
    stop(state, grace_s)
    endpoints.path_of(ws, name).unlink(missing_ok=True)
    log_path(ws, name).unlink(missing_ok=True)
    shutil.rmtree(tmp_dir(ws, name), ignore_errors=True)
    return True


def start_server(
    state: EndpointState,
    model_dir: Path,
    device: str,
    log: Path,
    request_timeout_ms: int,
    scratch: Mapping[str, str] | None = None,
) -> Child:
    """Start the server for ``state``'s port and keys; returns at once (see ``wait_ready``)."""
    check_port_free(state.port)
    argv = [
        python(),
        "-m",
        "harness.backends.local.server",
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
            **(scratch or {}),
        }
    )
    return spawn(argv, log, env, cwd=log.parent)


def wait_ready(proc: Child, state: EndpointState, log: Path, timeout_s: float) -> None:
    """Return once ``GET /`` answers 200; DeploymentError (with the log tail) otherwise."""
    url = f"http://{BIND_HOST}:{state.port}/"
    deadline = Deadline(timeout_s)
    heartbeat = Heartbeat(
        f"inference server of endpoint {state.name}", deadline, str(log), every_s=30.0
    )

    def ready() -> bool:
        code = proc.poll()
        if code is not None:
            raise _exited(state, code, log)
        healthy = _healthy(url)
        heartbeat.beat("ready" if healthy else "loading the model")
        return healthy

    if deadline.until(ready, 0.2):
        return
    stop_process(proc.record)
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


def log_path(ws: Workspace, endpoint: str) -> Path:
    return ws.endpoints / f"{endpoint}.log"


def tmp_dir(ws: Workspace, endpoint: str) -> Path:
    """The server's temp dir (TMPDIR), deleted with the endpoint."""
    return ws.endpoints / f"{endpoint}.tmp"


def startup_marks(ws: Workspace, endpoint: str) -> Path:
    """The server's start-up moments (``server.mark``), in its temp dir: gone with it."""
    return tmp_dir(ws, endpoint) / "startup.json"


def server_gone(ws: Workspace, endpoint: str, proc: Child | None) -> str | None:
    """Why the endpoint's server cannot answer when it no longer runs (its exit code if this
    process started it, and its log tail); None while it runs or when none was deployed."""
    state = endpoints.load(ws, endpoint)
    if state is None or state.process is None or alive(state.process):
        return None
    log = log_path(ws, endpoint)
    code = proc.poll() if proc is not None else None
    return (
        f"the {_not_running(endpoint, code)}; log {log}:\n{log_tail(log)}\n"
        "fix the cause shown in the log and deploy again"
    )


def dead_servers(ws: Workspace, run_id: str) -> list[str]:
    """The servers of run ``run_id`` that stopped on their own (SIGKILL, the OOM killer, a
    crash) after their deployment succeeded, each named with its log: nothing of the run
    stops a deployed server before its teardown, so any other process can tell."""
    return [
        f"{_not_running(state.name, None)}; log {log_path(ws, state.name)}"
        for state in endpoints.all_states(ws)
        if state.tags.get(TAG_RUN_ID) == run_id
        and state.deployment.get("provisioning_state") == "Succeeded"
        and state.process is not None
        and not alive(state.process)
    ]


def _not_running(endpoint: str, code: int | None) -> str:
    return (
        f"inference server of endpoint {endpoint} is not running: it exited "
        f"({exit_description(code)})"
    )


def stop(state: EndpointState, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the endpoint's server group (SIGTERM, then SIGKILL after ``grace_s``); True if it
    was running. A process that merely reuses the recorded pid is not touched."""
    return stop_process(state.process, grace_s, f"endpoint {state.name}")
