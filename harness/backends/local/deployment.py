"""Deploying a registered model to a local endpoint, and taking it down again.

The server's process group is written to the endpoint's state file before waiting for it to
become ready, so even a harness killed during the wait leaves a server that the sweep finds.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.backends.base import Deployment
from harness.backends.local import endpoints, serving
from harness.backends.local.endpoints import EndpointState
from harness.backends.local.process import DEFAULT_GRACE_S
from harness.backends.local.workspace import Workspace
from harness.errors import DeploymentError

REQUEST_TIMEOUT_MS = 90_000  # the notebook's OnlineRequestSettings(request_timeout_ms=90000)


def start(
    ws: Workspace,
    endpoint: str,
    model_dir: Path,
    fields: dict[str, Any],
    device: str,
    timeout_s: float,
) -> tuple[Deployment, subprocess.Popen[bytes]]:
    """Start the server for ``endpoint``, wait until it serves; ``fields``: name, model_id..."""
    state = endpoints.require(ws, endpoint)
    if state.pgid:
        serving.stop(state)  # one deployment per local endpoint: a new one replaces it
    log = ws.endpoints / f"{endpoint}.log"
    proc = serving.start(state, model_dir, device, log, REQUEST_TIMEOUT_MS)
    record = {
        **fields,
        "pgid": proc.pid,
        "log": str(log),
        "provisioning_state": "Creating",
        "traffic": 0,
    }
    state = endpoints.save(ws, replace(state, deployment=record))
    try:
        serving.wait_ready(proc, state, log, timeout_s)
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


def delete(ws: Workspace, name: str, grace_s: float = DEFAULT_GRACE_S) -> bool:
    """Stop the endpoint's server and remove its state; False if there was no such endpoint."""
    state = endpoints.load(ws, name)
    if state is None:
        return False
    serving.stop(state, grace_s)
    endpoints.path_of(ws, name).unlink(missing_ok=True)
    (ws.endpoints / f"{name}.log").unlink(missing_ok=True)
    return True
