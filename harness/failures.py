"""What a failed test says at a glance: its one-line crash message and the class of its failure.

The morning reader's first question is whose move it is: the service's (quota, throttling, a
retired size, the service's own error: retry later or ask Azure), the model's (a quality gate
failed: the fine-tuned model is worse), or the harness's (an unexpected exception: a bug here).
The class is decided where the exception is still at hand (the test's own process), and
travels with the test's report to the process that writes the run report.
"""

from __future__ import annotations

from typing import Any

from harness import errors

SERVICE, MODEL_QUALITY, HARNESS = "service", "model quality", "harness"
CLASSES = (SERVICE, MODEL_QUALITY, HARNESS)
GATE_MARK = "quality_gate"  # marks a workflow test that judges the model, not the workflow
CRASH_CHARS = 500
# The workflow steps' own errors: the service refused or failed (quota and retired sizes are
# ComputeErrors, a failed job a JobError, failed provisioning a DeploymentError, ...).
_SERVICE_ERRORS = (
    errors.ComputeError,
    errors.JobError,
    errors.DeploymentError,
    errors.ScoringError,
    errors.TagError,
    errors.CleanupError,
)
_SERVICE_MODULES = ("azure.core.exceptions", "requests.exceptions", "urllib3.exceptions")


def failure_class(exc: BaseException | None, gate: bool) -> str:
    """service, model quality or harness, for the exception a failed test raised.

    An assertion is a check of what the service did (a deployment short of 100 % traffic),
    unless the test is a quality gate; any other exception the harness did not raise on
    purpose is the harness's."""
    if isinstance(exc, AssertionError):
        return MODEL_QUALITY if gate else SERVICE
    if isinstance(exc, _SERVICE_ERRORS) or type(exc).__module__ in _SERVICE_MODULES:
        return SERVICE
    return HARNESS


def crash_line(longrepr: Any) -> str:
    """pytest's one-line crash message (``longrepr.reprcrash``), or the skip reason."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return _one_line(str(longrepr[2]).removeprefix("Skipped: "))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:  # its first line, as pytest's short test summary shows it
        return _one_line(str(crash.message).strip().split("\n", 1)[0])
    lines = [line for line in str(longrepr or "").splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else ""


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= CRASH_CHARS else flat[: CRASH_CHARS - 1] + "…"
