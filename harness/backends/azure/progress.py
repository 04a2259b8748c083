"""Long Azure waits that say what they wait for (logger ``harness``, INFO).

A nightly run waits hours on a job and many minutes on a cluster, an endpoint and a
deployment. Each wait logs a line whenever the state changes and a heartbeat at least every
five minutes in between: what it waits for, its state, how long it has waited and its deadline,
and the studio URL for jobs. Nothing secret goes into these lines (names, states, URLs only).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from harness.waiting import Deadline, Poller

HEARTBEAT_S = 300.0
log = logging.getLogger("harness")


def duration(seconds: float) -> str:
    """``42m``, ``1h05m``, ``12s``: short enough for a log line."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


@dataclass
class Watch:
    """One wait's progress log: ``update(state)`` after every look at the resource."""

    what: str  # "fine-tune job brave_job_1", "endpoint ep-x"
    deadline: Deadline
    url: str = ""
    heartbeat_s: float = HEARTBEAT_S
    state: str | None = None
    _logged_at: float = field(default_factory=time.monotonic)

    def update(self, state: str) -> None:
        """Log on a state change, and as a heartbeat when nothing was logged for a while."""
        now = time.monotonic()
        changed = state != self.state
        if not changed and now - self._logged_at < self.heartbeat_s:
            return
        waited = now - self.deadline.start
        where = f" {self.url}" if self.url else ""
        log.info("%s %s%s, %s of %s deadline%s", self.what, "" if changed else "still ", state,
                 duration(waited), duration(self.deadline.seconds), where)
        self.state, self._logged_at = state, now


def wait_poller(watch: Watch, poller: Poller) -> bool:
    """Wait for an SDK poller until the deadline, logging its status; True when it finished.

    The poller is waited on in slices no longer than the heartbeat, so a long wait still logs;
    a failed operation raises its error from ``poller.wait`` as the SDK does.
    """
    while True:
        poller.wait(timeout=min(watch.deadline.remaining, watch.heartbeat_s))
        done = poller.done()
        watch.update(str(getattr(poller, "status", lambda: "InProgress")()))
        if done or watch.deadline.expired:
            return done
