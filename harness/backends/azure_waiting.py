"""Deadlines for the long operations, and the service's own words for error messages.

azure-core's retry policy already retries throttling and transient 5xx (honouring
Retry-After), and the SDK's LRO pollers already poll: what the harness adds is a deadline
around them and messages that quote the service instead of a traceback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class Poller(Protocol):
    """The part of azure-core's LROPoller the harness uses."""

    def wait(self, timeout: float | None = None) -> None: ...

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True)
class Deadline:
    """A point in (monotonic) time that every wait of one step counts down to."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining <= 0.0

    def sleep(self, interval: float) -> None:
        """Sleep ``interval`` but never past the deadline."""
        time.sleep(min(interval, self.remaining))

    def wait(self, poller: Poller) -> bool:
        """Wait for an SDK poller until the deadline; True when it finished (maybe failed)."""
        poller.wait(timeout=self.remaining)
        return poller.done()


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
