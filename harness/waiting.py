"""Waiting with a deadline: one object that every long wait of a step counts down to.

Azure's LRO pollers, a local job, a server's readiness and a process group's exit are all
waited on the same way, so a deadline means the same thing everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

    def until(self, done: Callable[[], bool], interval_s: float) -> bool:
        """Call ``done`` every ``interval_s`` until it is true (True) or time is up (False)."""
        while not done():
            if self.expired:
                return False
            self.sleep(interval_s)
        return True

    def wait(self, poller: Poller) -> bool:
        """Wait for an SDK poller until the deadline; True when it finished (maybe failed)."""
        poller.wait(timeout=self.remaining)
        return poller.done()
