"""Scoring a local endpoint the way a client of a real endpoint would: an HTTPS-style POST of
the chat-completion request with the endpoint key (``harness.backends.http``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.backends.base import ScoringReply, Secret
from harness.backends.http import post_score


def post(
    url: str, body: Mapping[str, Any], key: Secret | None, timeout_s: float, log: Path
) -> ScoringReply:
    """The reply whatever its status; ScoringError only when no reply came at all."""
    return post_score(
        url, body, key, timeout_s, f"check that the deployment is running and look at its log {log}"
    )
