"""The service's own words for error messages, and its states as plain text.

azure-core's retry policy already retries throttling and transient 5xx (honouring
Retry-After), and the SDK's LRO pollers already poll: what the harness adds is a deadline
around them (``harness.waiting.Deadline``) and messages that quote the service instead of a
traceback.
"""

from __future__ import annotations

from typing import Any


def service_message(exc: BaseException) -> str:
    """``code: message`` as the service sent it, else the exception's first line."""
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if message:
        return f"{code}: {message}" if code else str(message)
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def is_quota(text: str) -> bool:
    return "quota" in text.casefold()


def status_text(value: Any) -> str:
    """SDK states are str enums (``JobStatus.COMPLETED``); the harness compares plain text."""
    return str(getattr(value, "value", value) or "")
