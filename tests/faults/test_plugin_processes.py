"""The plugin in real pytest subprocesses: two xdist workers, and signals during a run.

Seconds per test, not milliseconds, so these run with the fault suite (``pytest -m faults``,
a step of ``.ci/run``), not with the unit suite.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.support.fake_backend import read_events
from tests.support.plugin_project import (
    SUITE,
    balance,
    created,
    isolate,
    leftovers,
    make_project,
    report,
    start_and_wait_for,
    wait_for_event,
)


@pytest.fixture(autouse=True)
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return isolate(monkeypatch, tmp_path_factory)


@pytest.fixture
def events(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(pytester, monkeypatch)


def test_under_xdist_resources_are_created_once_and_deleted_once(
    pytester: pytest.Pytester, events: Path, workspace: Path
) -> None:
    """The shared state (and the data copy) lives in the run's directory in the workspace,
    where the sweep finds it if the run is killed; a finished run removes it."""
    pytester.makepyfile(
        test_shared_state="""
        def test_the_shared_state_is_in_the_workspace(harness_resources, harness_config):
            runs = harness_config.workspace_dir / "runs"
            assert harness_resources.shared_dir == runs / harness_config.run_id
    """
    )
    result = pytester.runpytest_subprocess("-p", "harness.plugin", "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=SUITE, skipped=1)  # one test added here
    result.stdout.fnmatch_lines(
        ["harness: under -n the workers' progress lines go to *harness.log*"]
    )
    assert leftovers(workspace) == []
    assert created(events) == {"compute": 1, "endpoint": 1, "job": 1, "model": 1, "deployment": 1}
    assert set(balance(events).values()) == {0}
    workers = {e["pid"] for e in read_events(events) if e["event"] == "close"}
    assert len(workers) == 3  # two workers used the backend; the coordinator cleaned up


def test_a_part_that_dies_ends_an_xdist_run_without_waiting_for_the_workers(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job dies while a worker waits for it (30 s here): the controller, watching the
    run's parts, names what died and ends the run at once; the worker never gets to the
    model, everything created is deleted, and the report says why the run ended."""
    result = ended_by_a_dead_job(pytester, events, monkeypatch, "wait_for_job", sleep_s=30)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert created(events)["model"] == 0  # the waiting worker was stopped, not waited for


def test_a_part_that_dies_as_the_last_tests_run_ends_the_run_just_the_same(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job dies as scoring starts, and the fake's remaining tests finish within the
    watcher's half-second (as a killed server's scoring tests fail at once): the controller's
    last look, as its session finishes, names what died and the run ends as if the watcher
    had seen it, with the same line, verdict and reason (CI, 2026-12-04: it did not)."""
    ended_by_a_dead_job(pytester, events, monkeypatch, "invoke", sleep_s=0)


def ended_by_a_dead_job(
    pytester: pytest.Pytester,
    events: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    sleep_s: float,
) -> pytest.RunResult:
    """An ``-n 2`` run whose fake job dies once a worker reaches ``step``: the run names what
    died, ends without a traceback, deletes everything it created, and its report is
    "interrupted" with what died as the reason."""
    monkeypatch.setenv("HARNESS_FAKE_SLEEP", f"{step}:{sleep_s:g}")
    monkeypatch.setenv("HARNESS_FAKE_DIES", step)
    result = pytester.runpytest_subprocess("-p", "harness.plugin", "-p", "xdist", "-n", "2")
    died = f"fake job died in {step} (exit code -9: killed by SIGKILL); log fake://job"
    result.stdout.fnmatch_lines(
        [f"harness: {died}; ending the run: the workers are stopped and what the run created *"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert set(balance(events).values()) == {0}, read_events(events)
    written = report(pytester)
    assert written["run"]["verdict"] == "interrupted" and written["run"]["reason"] == died
    return result


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_still_tears_down(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    monkeypatch.setenv("HARNESS_FAKE_SLEEP", "wait_for_job:30")
    process = start_and_wait_for(pytester, events, "wait_for_job")
    process.send_signal(signum)
    process.wait(timeout=20)
    written = report(pytester)
    assert written["run"]["verdict"] == "interrupted"
    # written after the last deletion it waited for, with the loss the job logged so far
    assert {t["resource"] for t in written["teardown"]} >= {"endpoint", "job", "compute"}
    assert written["metrics"]["loss"]
    assert json.dumps(created(events))
    assert created(events)["endpoint"] == 1
    assert set(balance(events).values()) == {0}, read_events(events)
    deletions = [e for e in read_events(events) if e["event"] == "delete"]
    assert {e["delete_timeout_s"] for e in deletions} == {5.0}  # started, not awaited


def test_sigint_then_sigterm_during_teardown_names_what_is_left(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI's cancel: SIGTERM follows SIGINT while a deletion is under way. No traceback; the
    deletion under way is not broken; nothing more is started and each resource not deleted
    is named (at once: SIGKILL may follow before the summary)."""
    monkeypatch.setenv("HARNESS_FAKE_SLEEP", "wait_for_job:30,delete_endpoint:1")
    process = start_and_wait_for(pytester, events, "wait_for_job")
    process.send_signal(signal.SIGINT)
    wait_for_event(process, events, "delete_endpoint")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    output = out.decode()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output
    deleted = {e["kind"] for e in read_events(events) if e["event"] == "delete"}
    assert deleted == {"job", "endpoint"}  # the endpoint's was under way
    left = "harness: left for `python -m harness sweep` after a second signal:"
    assert f"{left} endpoint ep-" in output and f"{left} compute local" in output


# SIGINT at a moment no timer can hit on purpose, made deterministic: while pytest writes the
# report of a failed test (its traceback formatting calls ``ast``: an exception raised there
# by a signal handler was an INTERNALERROR, the report lost), and while a finalizer runs in
# a test (Python prints an exception raised there as "Exception ignored" and drops it)
SIGNAL_AT_MOMENT = """
import os, signal, time, weakref
import pytest

FAILING = "test_eval_loss_after_finetuning_is_lower_than_before"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    if "{moment}" == "report" and item.name == FAILING and call.when == "call":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, before pytest formats the report
    return (yield)


class Held:
    pass


def _in_finalizer():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)  # the handler runs here, inside the finalizer


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if "{moment}" == "finalizer" and item.name == FAILING:
        held = Held()
        weakref.finalize(held, _in_finalizer)
        del held
    return (yield)
"""


@pytest.mark.parametrize("moment", ["report", "finalizer"])
def test_a_signal_while_pytest_reports_or_a_finalizer_runs_interrupts_cleanly(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """The signal is not lost and breaks nothing: the failed test is reported whole, the run
    is interrupted at the next test, with no traceback, and its resources are deleted."""
    monkeypatch.setenv("HARNESS_FAKE_EVAL_LOSS", "9.9")  # the quality gate fails
    pytester.makepyfile(signal_at_moment=SIGNAL_AT_MOMENT.format(moment=moment))
    argv = [sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "signal_at_moment"]
    process = pytester.popen([*argv, "-rf"], stdin=-1)
    out, _ = process.communicate(timeout=120)
    output = out.decode()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert "Exception ignored" not in output, output
    if moment == "report":
        assert "FAILED e2e/test_acceptance_copy.py::test_eval_loss_after_finetuning" in output
    assert report(pytester)["run"]["verdict"] == "interrupted"
    assert set(balance(events).values()) == {0}, read_events(events)


SIGNAL_AT_END = """
import os, signal
import harness.{module}

_original = harness.{module}.{function}
_sent = []


def _signalled(*args, **kwargs):
    if not _sent:
        _sent.append(os.kill(os.getpid(), signal.SIGINT))
    return _original(*args, **kwargs)


harness.{module}.{function} = _signalled
"""


@pytest.mark.parametrize(
    "module, function, status, entries",
    [
        ("plugin", "_delete_recorded", pytest.ExitCode.INTERRUPTED, 0),
        ("report", "write_report", pytest.ExitCode.OK, 1),
        ("history", "append", pytest.ExitCode.OK, 1),
    ],
    ids=["before-the-record", "during-the-report", "during-the-history"],
)
def test_a_signal_at_session_end_is_an_interruption_only_if_it_cost_the_record(
    pytester: pytest.Pytester, events: Path, module: str, function: str, status: int, entries: int
) -> None:
    """SIGINT while the session ends: before the record is written it costs the history
    entry (interrupted, exit 2); while the report or the history entry is written it costs
    nothing (both are written whole), so the exit status is the tests'."""
    pytester.makepyfile(signal_at_end=SIGNAL_AT_END.format(module=module, function=function))
    history = pytester.path / "history"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "harness.plugin", "-p", "signal_at_end"]
    process = pytester.popen([*argv, "--history", str(history)], stdin=-1)
    out, _ = process.communicate(timeout=120)
    output = out.decode()
    assert process.returncode == status, output
    assert "Traceback" not in output
    assert len(list(history.rglob("*.json"))) == entries, output
    verdict = "interrupted" if status == pytest.ExitCode.INTERRUPTED else "passed"
    assert report(pytester)["run"]["verdict"] == verdict
