"""POSTing scoring requests to a local endpoint, the way a client of a real endpoint would."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests

from harness.backends.base import ScoringReply
from harness.errors import ScoringError


def post(url: str, body: Mapping[str, Any], key: str | None, timeout_s: float) -> ScoringReply:
    """The reply whatever its status; ScoringError only when no reply came at all."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    started = time.perf_counter()
    try:
        reply = requests.post(url, json=dict(body), headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise ScoringError(
            f"POST {url} got no reply within {timeout_s:.0f} s ({type(exc).__name__}: "
            f"{exc}); check that the deployment is running (its log is in the "
            "workspace's endpoints directory)"
        ) from exc
    return ScoringReply(
        status_code=reply.status_code, body=reply.text, elapsed_s=time.perf_counter() - started
    )
