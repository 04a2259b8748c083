"""Long-running operations, as the service answers them per route.

Where the Azure SDK team's recordings of the live service show an operation, the fake follows
them (Azure/azure-sdk-assets python/sdk/ml/azure-ai-ml/tests/recordings/):

- ``online_services/e2etests/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment
  .json``: endpoint and deployment operations answer ``{"status": "Updating"}`` (not
  ``InProgress``) until ``Succeeded``; endpoint DELETE answers 202 with BOTH
  ``Azure-AsyncOperation`` and ``Location`` and a ``null`` body, and the SDK polls the status URL;
  a traffic-update PUT on an existing endpoint answers ``provisioningState: Creating``.
- ``compute/e2etests/test_compute.pyTestComputetest_aml_compute_create_and_delete.json``:
  compute operations answer ``InProgress``, then ``Succeeded`` with ``percentComplete``; compute
  DELETE answers 202 with ``Azure-AsyncOperation`` only.

Where no recording exists the shape is authored from the rest-api-specs (stable/2024-04-01) and
the SDK's generated code (azure-ai-ml ``_restclient/arm_ml_service/operations/_operations.py``,
the headers each ``_*_initial`` reads): job cancel answers 202 with ``Location`` only (its
``_cancel_initial`` reads only ``Location`` and ``Retry-After``; the spec's example
preview/2023-04-01-preview/examples/Job/cancel.json gives 202 with ``Location`` too), that URL
answering 202 while the work goes on, then 200; a failed operation's status carries
``error: {code, message}``.

Polling delays come as ``retry-after-ms`` (honoured by azure-core's ``get_retry_after``) rather
than ARM's ``Retry-After`` seconds, so that tests do not sleep. An operation ends when it is not
held and its latency has passed; ``outcome`` is read when it ends.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.azure_fake.wire import ARM, NAME, Call, Reply, Route, Router, json_reply, route


@dataclass
class Operation:
    kind: str  # what ``hold`` and ``latency`` refer to: "compute", "endpoint", "delete", ...
    outcome: Callable[[], tuple[str, str]]  # -> (status, error message)
    on_done: Callable[[str], None] = lambda status: None
    latency_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    finished: str | None = None
    running: str = "InProgress"  # the status while in progress (endpoints: "Updating")
    percent: bool = False  # compute: the final status carries percentComplete


@dataclass
class Operations:
    """Accepts operations and serves their status and result URLs."""

    router: Router
    hold: set[str] = field(default_factory=set)  # kinds that stay in progress until released
    latency: dict[str, float] = field(default_factory=dict)  # kind -> seconds
    retry_after_ms: str = "1"
    _ops: dict[str, Operation] = field(default_factory=dict)
    _held: dict[str, threading.Event] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def routes(self) -> list[Route]:
        base = re.escape(ARM)
        return [
            route("GET", "operation", f"{base}/fake-operations/{NAME}", self._status),
            route("GET", "operation.result", f"{base}/fake-results/{NAME}", self._result),
        ]

    def accept(
        self, op: Operation, *, location: bool = False, async_header: bool = True
    ) -> dict[str, str]:
        """Headers of an accepted operation: ``Azure-AsyncOperation`` and/or ``Location``."""
        op.latency_s = self.latency.get(op.kind, 0.0)
        op_id = f"op{next(self._ids)}"
        self._ops[op_id] = op
        headers = {"retry-after-ms": self.retry_after_ms}
        if async_header:
            headers["Azure-AsyncOperation"] = f"{ARM}/fake-operations/{op_id}"
        if location:
            headers["Location"] = f"{ARM}/fake-results/{op_id}"
        return headers

    def release(self, kind: str) -> None:
        """Let held operations of ``kind`` finish (they then answer their outcome)."""
        self.hold.discard(kind)
        self._held.setdefault(kind, threading.Event()).set()

    def settle(self, timeout_s: float = 5.0) -> None:
        """Release everything held and join the SDK's poller threads, so that no poller
        outlives the mock and reaches for the real network."""
        for kind in [*self.hold, *self._held]:
            self.release(kind)
        for op in self._ops.values():
            op.latency_s = 0.0
        for thread in threading.enumerate():
            if thread.name.startswith("LROPoller(") and thread is not threading.current_thread():
                thread.join(timeout_s)

    def _finish(self, op: Operation) -> str | None:
        """The operation's end state, once it is neither held nor within its latency."""
        if op.finished is None and op.kind in self.hold:
            event = self._held.setdefault(op.kind, threading.Event())
            event.clear()
            self.router.lock.release()  # let the test and other pollers go on meanwhile
            try:
                event.wait(0.2)
            finally:
                self.router.lock.acquire()
        due = time.monotonic() - op.started >= op.latency_s
        if op.finished is None and op.kind not in self.hold and due:
            op.finished = op.outcome()[0]
            op.on_done(op.finished)
        return op.finished

    def _status(self, call: Call, m: re.Match[str]) -> Reply:
        op = self._ops[m.group(1)]
        status = self._finish(op)
        if status is None:
            return json_reply(200, {"status": op.running}, {"retry-after-ms": self.retry_after_ms})
        body: dict[str, object] = {"status": status}
        if op.percent:
            body["percentComplete"] = 100.0
        if status != "Succeeded":
            code, message = _error_parts(op.outcome()[1])
            body["error"] = {"code": code, "message": message}
        return json_reply(200, body)

    def _result(self, call: Call, m: re.Match[str]) -> Reply:
        op = self._ops[m.group(1)]
        status = self._finish(op)
        if status is None:
            return 202, {"Location": call.url, "retry-after-ms": self.retry_after_ms}, ""
        if status != "Succeeded":
            code, message = _error_parts(op.outcome()[1])
            return json_reply(500, {"error": {"code": code, "message": message}})
        return 200, {}, ""


def _error_parts(text: str) -> tuple[str, str]:
    """``"Code: message"`` -> (code, message); plain text is an OperationFailed."""
    code, sep, message = text.partition(": ")
    return (code, message) if sep and " " not in code else ("OperationFailed", text)
