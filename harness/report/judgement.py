"""The run's verdict, its one-line reason and the class of its failure, from the report.

A run is PASSED only when the workflow was validated: the model was reached, a workflow test
(one that uses the harness's fixture chain) passed, the deployed model was scored, and nothing
failed. A run that validated nothing (Azure settings missing, every workflow test skipped, a
``-k`` that left out the scoring) is NOT VALIDATED, never green, whatever other tests passed:
a unit test that happens to carry the ``e2e`` mark cannot make an e2e run pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PASSED, FAILED, NOT_VALIDATED, INTERRUPTED = "passed", "failed", "not validated", "interrupted"
VERDICTS = (PASSED, FAILED, NOT_VALIDATED, INTERRUPTED)
FAILED_OUTCOMES = frozenset({"failed", "error"})
_MATCH_CHARS = 80


def judge(report: Mapping[str, Any]) -> dict[str, Any]:
    """``verdict``, ``verdict_reason`` (one line) and ``failure_class`` (or None) of a run."""
    run, tests = report["run"], report["tests"]
    failing = failures(report)
    if run["interrupted"]:
        return _said(INTERRUPTED, run["reason"] or "interrupted (Ctrl-C or SIGTERM)")
    if failing:
        first = failing[0]
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        step = f" [step {first['step']}]" if first["step"] else ""
        reason = f"{short_id(first['nodeid'])}{step}: {first['crash'] or first['outcome']}{more}"
        return _said(FAILED, reason, first["failure_class"])
    unvalidated = not_validated_reason(report)
    if unvalidated:
        return _said(NOT_VALIDATED, unvalidated)
    if run["exit_status"] not in (None, 0):
        failed_teardown = any(t["outcome"] == "failed" for t in report["teardown"])
        reason = f"pytest exited with status {run['exit_status']} although no test failed"
        if failed_teardown:
            reason += ": a teardown failed (see Teardown)"
        return _said(FAILED, reason, "service" if failed_teardown else "harness")
    passed = sum(t["outcome"] == "passed" for t in tests if t["workflow"])
    return _said(PASSED, f"{passed} workflow tests passed")


def _said(verdict: str, reason: str, failure_class: str | None = None) -> dict[str, Any]:
    return {"verdict": verdict, "verdict_reason": reason, "failure_class": failure_class}


def not_validated_reason(report: Mapping[str, Any]) -> str:
    """Why the workflow was not validated, or "" when it was."""
    workflow = [t for t in report["tests"] if t["workflow"]]
    others = len(report["tests"]) - len(workflow)
    if not workflow:
        beside = f" ({others} other tests ran; they do not validate it)" if others else ""
        return f"no workflow test ran{beside}"
    skipped = [t for t in workflow if t["outcome"] == "skipped"]
    if len(skipped) == len(workflow):
        return f"every workflow test was skipped: {skipped[0]['crash'] or 'no reason given'}"
    if not report["model"]:
        return "the foundation model was never reached"
    if not any(t["outcome"] == "passed" for t in workflow):
        return "no workflow test passed"
    if not report["samples"]:
        ran = len(workflow) - len(skipped)
        return f"the deployed model was never scored ({ran} workflow tests ran)"
    return ""


def failures(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failed and errored tests, workflow tests first, each with its crash line, the
    workflow step it failed in (None for a test's own check) and its failure class."""
    failing = [t for t in report["tests"] if t["outcome"] in FAILED_OUTCOMES]
    failing.sort(key=lambda t: not t["workflow"])
    return [
        {
            "nodeid": t["nodeid"],
            "outcome": t["outcome"],
            "crash": t.get("crash") or "",
            "step": failing_step(t, report["stages"]),
            "failure_class": t.get("failure_class") or "harness",
        }
        for t in failing
    ]


def failing_step(test: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]) -> str | None:
    """The failed stage whose error the test's crash line carries; for an error in a test's
    setup without such a match, the last stage that failed."""
    crash = " ".join(str(test.get("crash") or "").split())
    failed = [s for s in stages if s["outcome"] == "failed"]
    for stage in failed:
        error = " ".join(str(stage.get("error") or "").split())[:_MATCH_CHARS]
        if error and error in crash:
            return str(stage["name"])
    if test["outcome"] == "error" and test.get("phase") != "teardown" and failed:
        return str(failed[-1]["name"])
    return None


def short_id(nodeid: str) -> str:
    """``test_x[param]`` from ``tests/e2e/test_workflow.py::test_x[param]``."""
    return nodeid.rsplit("::", 1)[-1]
