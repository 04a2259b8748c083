"""Waiting with a deadline: one object that every long wait of a step counts down to.

Azure's LRO pollers, a local job, a server's readiness and a process group's exit are all
waited on the same way, so a deadline means the same thing everywhere; a ``Heartbeat`` says
what a long wait is waiting for, so that a nightly run is never silent for hours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("harness")


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


def short_duration(seconds: float) -> str:
    """42m, 4h, 1h05m, 35s: how heartbeats and stage lines say a duration."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs and minutes < 10 else f"{minutes}m"
    return f"{secs}s"


@dataclass
class Heartbeat:
    """What a long wait says through logger ``harness``: every state change, and at least
    every ``every_s`` while nothing changes, with the time waited against the deadline."""

    what: str  # "job ft-abc (display name)"
    deadline: Deadline
    where: str = ""  # the studio URL, or the local job's log file
    every_s: float = 300.0
    _state: str | None = None
    _said_at: float = field(default=0.0)

    def beat(self, state: str) -> None:
        now = time.monotonic()
        if state == self._state and now - self._said_at < self.every_s:
            return
        waited = short_duration(now - self.deadline.start)
        where = f"; {self.where}" if self.where else ""
        log.info(
            "%s %s, %s of %s deadline%s",
            self.what,
            state,
            waited,
            short_duration(self.deadline.seconds),
            where,
        )
        self._state, self._said_at = state, now


def wait_poller(heartbeat: Heartbeat, poller: Poller) -> bool:
    """Wait for an SDK poller until the heartbeat's deadline; True when it finished.

    The SDK's poller would block silently until done, so it is waited on in slices no longer
    than the heartbeat. A failed operation raises its error from ``poller.wait`` as the SDK
    does.
    """
    deadline = heartbeat.deadline
    while True:
        poller.wait(timeout=min(deadline.remaining, heartbeat.every_s))
        done = poller.done()
        heartbeat.beat(str(getattr(poller, "status", lambda: "InProgress")()))
        if done or deadline.expired:
            return done
