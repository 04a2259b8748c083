"""Scoring a local endpoint the way a client of a real endpoint would: an HTTPS-style POST of
the chat-completion request with the endpoint key (``harness.backends.http``). When no reply
comes from a server that died, the error says so (exit code, log) instead of blaming the
timeout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.backends.base import ScoringReply, Secret
from harness.backends.http import post_score
from harness.backends.local import deployments
from harness.backends.local.processes import Child
from harness.backends.local.workspace import Workspace
from harness.errors import ScoringError


def post(
    url: str, body: Mapping[str, Any], key: Secret | None, timeout_s: float, log: Path
) -> ScoringReply:
    """The reply whatever its status; ScoringError only when no reply came at all."""
    return post_score(
        url, body, key, timeout_s, f"check that the deployment is running and look at its log {log}"
    )


def score(
    ws: Workspace,
    endpoint: str,
    url: str,
    body: Mapping[str, Any],
    key: Secret | None,
    timeout_s: float,
    server: Child | None,
) -> ScoringReply:
    """POST as a client would; ``server``: the endpoint's server if this process started it."""
    try:
        return post(url, body, key, timeout_s, deployments.log_path(ws, endpoint))
    except ScoringError as exc:
        failure = exc
    gone = deployments.server_gone(ws, endpoint, server)
    raise ScoringError(gone) if gone else failure
