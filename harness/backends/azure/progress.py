"""Waiting on azure-core's pollers so that a long wait still says what it waits for.

A nightly run waits many minutes on a cluster, an endpoint and a deployment. The SDK's poller
would block silently until done; here it is waited on in slices no longer than the heartbeat
(``harness.waiting.Heartbeat``: a line on logger ``harness`` at every state change and at least
every five minutes, with the time waited against the deadline).
"""

from __future__ import annotations

from harness.waiting import Heartbeat, Poller


def wait_poller(heartbeat: Heartbeat, poller: Poller) -> bool:
    """Wait for an SDK poller until the heartbeat's deadline; True when it finished.

    A failed operation raises its error from ``poller.wait`` as the SDK does.
    """
    deadline = heartbeat.deadline
    while True:
        poller.wait(timeout=min(deadline.remaining, heartbeat.every_s))
        done = poller.done()
        heartbeat.beat(str(getattr(poller, "status", lambda: "InProgress")()))
        if done or deadline.expired:
            return done
