"""Local endpoints: one state file per endpoint, holding its keys, port and server process.

State files are the source of truth for every process (xdist workers, the sweep): the server's
process record is in there, so a server left by a killed run can still be found and stopped
(and a stranger that reused its pid cannot be). They hold the endpoint keys and are readable by
the owner only; the keys are left out of the state's repr, which tracebacks print.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.backends.base import Endpoint
from harness.backends.local.processes import ProcessRecord
from harness.backends.local.server import BIND_HOST
from harness.backends.local.workspace import Workspace
from harness.errors import DeploymentError
from harness.files import PRIVATE, write_json


@dataclass(frozen=True)
class EndpointState:
    name: str
    port: int
    keys: tuple[str, str] = field(repr=False)
    tags: dict[str, str] = field(default_factory=dict)
    auth_mode: str = "key"
    provisioning_state: str = "Creating"
    created: float = 0.0
    deployment: dict[str, Any] = field(default_factory=dict)  # name, model_id, process, log...

    @property
    def scoring_uri(self) -> str:
        return f"http://{BIND_HOST}:{self.port}/score"

    @property
    def process(self) -> ProcessRecord | None:
        """The server's process, as ``processes.spawn`` recorded it (None: no server)."""
        return ProcessRecord.from_dict(self.deployment.get("process"))

    @property
    def pgid(self) -> int | None:
        return self.process.pgid if self.process else None

    def handle(self) -> Endpoint:
        return Endpoint(
            name=self.name,
            scoring_uri=self.scoring_uri,
            auth_mode=self.auth_mode,
            provisioning_state=self.provisioning_state,
            tags=dict(self.tags),
        )


def path_of(ws: Workspace, name: str) -> Path:
    return ws.endpoints / f"{name}.json"


def save(ws: Workspace, state: EndpointState) -> EndpointState:
    """Write atomically, readable by the owner only (the file holds the keys)."""
    write_json(path_of(ws, state.name), asdict(state), mode=PRIVATE)
    return state


def load(ws: Workspace, name: str) -> EndpointState | None:
    try:
        data = json.loads(path_of(ws, name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return EndpointState(**{**data, "keys": tuple(data["keys"])})


def require(ws: Workspace, name: str) -> EndpointState:
    state = load(ws, name)
    if state is None:
        raise DeploymentError(
            f"endpoint {name} does not exist in {ws.endpoints}; expected "
            f"{path_of(ws, name)}; create it first (begin_create_endpoint)"
        )
    return state


def all_states(ws: Workspace) -> list[EndpointState]:
    names = sorted(p.stem for p in ws.endpoints.glob("*.json")) if ws.endpoints.is_dir() else []
    return [state for name in names if (state := load(ws, name)) is not None]


def create(ws: Workspace, name: str, tags: Mapping[str, str]) -> EndpointState:
    """Reserve a name, a free loopback port and two fresh keys."""
    with ws.lock("endpoints"):
        if load(ws, name) is not None:
            raise DeploymentError(
                f"endpoint {name} already exists in {ws.endpoints}; endpoint names "
                "are never reused: generate a new name (harness.naming.endpoint_name)"
            )
        used = {state.port for state in all_states(ws)}
        state = EndpointState(
            name=name,
            port=free_port(used),
            created=time.time(),
            tags=dict(tags),
            keys=(secrets.token_urlsafe(32), secrets.token_urlsafe(32)),
        )
        save(ws, state)
    return save(ws, replace(state, provisioning_state="Succeeded"))


def free_port(used: set[int]) -> int:
    """A loopback port the OS says is free and no other endpoint has reserved."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((BIND_HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in used:
            return port
    raise DeploymentError(
        f"found no free port on {BIND_HOST} after 50 tries; stop some servers "
        "(python -m harness sweep) and try again"
    )


def check_port_free(port: int) -> None:
    """DeploymentError before starting a server on a port that cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind((BIND_HOST, port))
        except OSError as exc:
            raise DeploymentError(
                f"port {port} on {BIND_HOST} cannot be bound ({exc.strerror}); another process "
                "holds it; delete the endpoint and create a new one (it gets a new port)"
            ) from exc
