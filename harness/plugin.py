"""The pytest plugin's hooks: options, report header, signals, the xdist hand-off, the
controller's teardown and the summary. The session fixture chain lives in ``fixtures.py``
(imported here so that the ``pytest11`` entry point registers both, as pytest-django does).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.junitxml import xml_key  # what record_testsuite_property uses, at session end

from harness import config, hooks, verdict
from harness import config as settings
from harness.errors import ConfigError
from harness.failures import GATE_MARK, crash_line, failure_class
from harness.fixtures import CONFIG, PROGRESS, TRACKER
from harness.interrupts import Signals
from harness.lifecycle import ResourceTracker, RunMark, runs_root
from harness.lost_configuration import lost_configuration
from harness.progress import Progress, events_path, is_xdist_worker, log_to_file
from harness.report import text
from harness.report.junit import junit_properties
from harness.report.terminal import github_annotations, summary_lines

if TYPE_CHECKING:
    from harness.backends.base import Backend

pytest_plugins = ("harness.fixtures",)  # the session fixture chain
SIGNALS = pytest.StashKey[Signals]()
LOG_FILE = pytest.StashKey[logging.Handler]()
FINISHED = pytest.StashKey[verdict.Finished]()
RECORDER = pytest.StashKey[Any]()  # harness.backends.azure.recording.TrafficRecorder
MESSAGE_CHARS = 2000
WATCH_S = 0.5


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    config.add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{GATE_MARK}: a workflow test that judges the fine-tuned model's quality"
    )
    cfg = config.stash[CONFIG] = _resolve(config)
    for warning in settings.misspelled_environment(os.environ):
        config.issue_config_time_warning(pytest.PytestConfigWarning(warning), stacklevel=2)
    mark = RunMark(runs_root(cfg.workspace_dir) / cfg.run_id)
    shared = getattr(config, "workerinput", {}).get("harness_shared_dir")
    if shared is None and _is_coordinator(config):
        shared = str(mark.directory)  # the run's directory (made when used): the sweep finds it
    config.stash[PROGRESS] = progress = _progress(config, cfg)
    config.stash[TRACKER] = tracker = ResourceTracker(
        shared_dir=Path(shared) if shared else None,
        run_mark=mark,
        delete_timeout_s=cfg.delete_timeout_s,
        keep_on_failure=cfg.keep_resources,
        progress=progress,
    )
    signals = config.stash[SIGNALS] = Signals(
        config, tracker, _is_coordinator(config), lambda: _delete_recorded(config)
    )
    watch = _RunWatch(config, tracker, progress, signals)
    config.pluginmanager.register(watch, "harness-run-watch")
    config.pluginmanager.register(signals, "harness-signals")
    signals.install()
    if cfg.record_traffic is not None:
        from harness.backends.azure import recording

        # the session's own label (not worker_id()'s environment: pytester runs inside workers)
        process = getattr(config, "workerinput", {}).get("workerid", "main")
        config.stash[RECORDER] = recording.start(cfg, process)


def _progress(config: pytest.Config, cfg: config.HarnessConfig) -> Progress:
    """The run's recorder (one events file per run id) and its log file; the process that
    sees every test starts the record afresh."""
    path = events_path(cfg.report_dir, cfg.run_id)
    if not is_xdist_worker(config):
        path.unlink(missing_ok=True)  # a run id given again starts a new record
    config.stash[LOG_FILE] = log_to_file(cfg.report_dir / "harness.log")
    return Progress(
        path, {"run_id": cfg.run_id, "backend": cfg.backend, "options": cfg.report_options()}
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    signals = config.stash.get(SIGNALS, None)
    if signals is not None:
        signals.restore()
    tracker = config.stash.get(TRACKER, None)
    if tracker is not None:
        if _is_coordinator(config) and tracker.backend is not None:
            tracker.backend.close(stop_owned=True)
        if tracker.run_mark is not None:
            tracker.run_mark.release(remove=not is_xdist_worker(config))
    recorder = config.stash.get(RECORDER, None)
    if recorder is not None:
        path = recorder.stop()
        logging.getLogger("harness").info("recorded the Azure conversation to %s", path)
    handler = config.stash.get(LOG_FILE, None)
    if handler is not None:
        logging.getLogger("harness").removeHandler(handler)
        handler.close()


def _resolve(pytest_config: pytest.Config) -> config.HarnessConfig:
    """Options > env > ini > defaults; xdist workers take the coordinator's run id.

    A workspace the user named is checked here, so a file or a read-only directory fails in
    a second instead of after collection; the default is checked only by the local backend,
    so that loading the plugin never fails an unrelated pytest run."""
    run_id = getattr(pytest_config, "workerinput", {}).get("harness_run_id")
    if run_id and pytest_config.getoption("harness_run_id") is None:
        pytest_config.option.harness_run_id = run_id
    try:
        cfg = config.from_pytest(pytest_config)
        verdict.tolerances(cfg)  # a bad --tolerance is a usage error, before anything runs
        config.check_record_traffic(cfg)
        if not cfg.sources["workspace_dir"].startswith("default"):
            from harness.backends.local.workspace import check_workspace

            check_workspace(cfg)  # the default is checked when the backend starts
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return cfg


def _is_coordinator(pytest_config: pytest.Config) -> bool:
    """True in the xdist controller process (``-n N`` with N workers)."""
    return bool(getattr(pytest_config.option, "numprocesses", None)) and not is_xdist_worker(
        pytest_config
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the run id and the state directory."""
    node.workerinput["harness_run_id"] = node.config.stash[CONFIG].run_id
    node.workerinput["harness_shared_dir"] = str(node.config.stash[TRACKER].shared_dir)


class _RunWatch:
    """What the tracker must know as it happens: an interruption (the teardown that follows
    hurries, see ResourceTracker.delete) and a failed test (``--keep-resources`` keeps what
    exists; under xdist the controller sees every worker's reports). Every test's outcome
    goes into the run record, from the process that sees them all."""

    def __init__(
        self, config: pytest.Config, tracker: ResourceTracker, progress: Progress, signals: Signals
    ) -> None:
        self.config, self.tracker, self.progress, self.signals = config, tracker, progress, signals
        self.worker, self.joined = is_xdist_worker(config), threading.Event()
        self.making = threading.Lock()  # the controller's backend, made by one thread only

    def pytest_sessionstart(self) -> None:
        if _is_coordinator(self.config):
            threading.Thread(target=self._watch, name="harness-join-run", daemon=True).start()

    def _watch(self) -> None:
        """The xdist controller learns that its workers use the harness from the run's record
        (the first step of a worker writes it), long before the first test report; from then
        on it watches the run's jobs and servers (a dead one ends the run)."""
        while not self.joined.is_set():
            if self.progress.used:
                self._join_run()
            self.joined.wait(WATCH_S)
        if self.tracker.backend is not None:
            self.signals.watch_parts(self.tracker.backend)

    def pytest_keyboard_interrupt(self) -> None:
        self.tracker.interrupted = True

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        """Around every other ``pytest_sessionfinish``: first the controller's last look at
        the run's parts; then, once pytest has torn down what a stopped run left and the
        controller has deleted what its workers left, the report is written again if
        anything happened after it (its teardown section)."""
        self._last_look()
        result = yield
        finished = self.config.stash.get(FINISHED, None)
        if finished is not None:
            try:
                verdict.rewrite_after_teardown(self.config.stash[CONFIG], finished)
            except Exception as exc:  # the first report stands; say what broke
                logging.getLogger("harness").error("the run report was not updated: %s", exc)
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.tracker.failure()
        if self.worker:
            return
        if report.when != "call" and report.outcome == "passed":
            return
        message = report.longreprtext[-MESSAGE_CHARS:] if report.failed else ""
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        self.progress.record_if_used(
            "test",
            nodeid=report.nodeid,
            outcome=outcome,
            duration_s=report.duration,
            message=message,
            phase=report.when,
            workflow=bool(getattr(report, "harness_workflow", False)),
            crash=crash_line(report.longrepr) if report.outcome != "passed" else "",
            **({"failure_class": report.harness_class} if hasattr(report, "harness_class") else {}),
        )

    def _join_run(self) -> None:
        """The xdist controller, once its workers use the harness: it holds the run's mark
        too (the shared state must outlive the last worker, for the deletions) and makes its
        backend now, so that whatever it needs to delete is loaded before an interruption.
        A session that never uses the harness makes neither (no workspace, no MLflow)."""
        self.joined.set()
        try:
            self.tracker.hold_run()
            with self.making:
                _coordinator_backend(self.config)
        except Exception as exc:  # a thread: the workers report what is wrong, no traceback
            logging.getLogger("harness").debug("the controller could not join the run: %s", exc)

    def _last_look(self) -> None:
        """The controller, before anything of its session's end: once more what the watcher
        looks for (``Signals.last_look``), with the backend made now if the run was too short
        for the watcher to make it."""
        if not (_is_coordinator(self.config) and self.progress.used):
            return
        try:
            with self.making:
                backend = _coordinator_backend(self.config)
        except Exception as exc:  # the deletions that follow say what is wrong
            logging.getLogger("harness").debug("no last look at the run's parts: %s", exc)
            return
        self.signals.last_look(backend)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark what the run report needs and only the test's own process knows: whether the
    test belongs to the workflow (uses the harness's fixture chain) and, for a failure, its
    class. Both travel to the xdist controller with the report."""
    report = yield
    report.harness_workflow = "harness_config" in getattr(item, "fixturenames", ())  # type: ignore[attr-defined]
    if report.failed:
        exc = call.excinfo.value if call.excinfo is not None else None
        gate = item.get_closest_marker(GATE_MARK) is not None
        report.harness_class = failure_class(exc, gate)  # type: ignore[attr-defined]
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = config.stash[CONFIG].header_lines()
    if _is_coordinator(config):
        log = config.stash[CONFIG].report_dir / "harness.log"
        lines.append(f"harness: under -n the workers' progress lines go to {log} (tail -f it)")
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop at once when the acceptance suite runs without its configuration file: no
    strict markers, no live logs, another rootdir (a path option given without ``=``)."""
    config = session.config
    if config.inipath is None and any(
        "harness_config" in getattr(item, "fixturenames", ()) for item in session.items
    ):
        raise pytest.UsageError(lost_configuration(config.invocation_params.args, config.rootpath))


@pytest.hookimpl(trylast=True)
def pytest_harness_create_backend(harness_config: config.HarnessConfig) -> Backend:
    from harness.backends import create_backend

    return create_backend(harness_config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Coordinator: delete what the workers recorded, after the last one is done; then the
    run's verdict (before pytest writes the JUnit XML, which carries its figures)."""
    tracker = session.config.stash[TRACKER]
    _delete_recorded(session.config)
    if tracker.problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not is_xdist_worker(session.config) and session.config.stash[PROGRESS].used:
        _finish(session, tracker.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED)


def _finish(session: pytest.Session, interrupted: bool) -> None:
    """Write the report whatever happened; a failure here is said, never raised."""
    config, cfg = session.config, session.config.stash[CONFIG]
    ended_by = config.stash[SIGNALS].ended_by  # a dead worker, job or server ended the run
    config.stash[PROGRESS].record(
        "run_ended",
        exit_status=int(session.exitstatus),
        interrupted=interrupted,
        **({"reason": ended_by} if ended_by else {}),
    )
    try:
        finished = config.stash[FINISHED] = verdict.finish(cfg, interrupted)
    except Exception as exc:  # the run's outcome stands; the summary says what broke
        logging.getLogger("harness").error("the run report could not be written: %s", exc)
        return
    session.exitstatus = _exit_status(session, finished)
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        for name, value in junit_properties(finished.report):
            xml.add_global_property(name, value)


def _exit_status(session: pytest.Session, finished: verdict.Finished) -> int:
    """A signal that cost part of the run's record (a history entry, a report file) makes
    the run interrupted; one that cost nothing leaves the tests' status. A record the disk
    refused fails a run whose tests passed, as a teardown problem does."""
    status = int(session.exitstatus)
    if finished.complete:
        return status
    if session.config.stash[TRACKER].interrupted:
        return int(pytest.ExitCode.INTERRUPTED)
    return int(pytest.ExitCode.TESTS_FAILED) if status == 0 else status


def _delete_recorded(config: pytest.Config) -> None:
    """Coordinator: delete what the workers recorded and is not deleted yet."""
    tracker = config.stash[TRACKER]
    if _is_coordinator(config) and tracker.coordinated and tracker.recorded():
        tracker.delete_recorded(_coordinator_backend(config))


def _coordinator_backend(config: pytest.Config) -> Backend:
    tracker = config.stash[TRACKER]
    if tracker.backend is None:
        cfg = config.stash[CONFIG]
        tracker.backend = config.hook.pytest_harness_create_backend(harness_config=cfg)
    return tracker.backend


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    finished = config.stash.get(FINISHED, None)
    if finished is not None:
        _summarise(terminalreporter, finished)
    tracker = config.stash[TRACKER]
    for line in tracker.problems:
        terminalreporter.write_line(f"harness teardown FAILED: {line}", red=True)
    if tracker.problems:
        terminalreporter.write_line("run `python -m harness sweep` to delete leftovers", red=True)
    for line in tracker.kept:
        terminalreporter.write_line(f"harness kept (--keep-resources): {line}", yellow=True)


def _summarise(terminalreporter: Any, finished: verdict.Finished) -> None:
    report = finished.report
    run = report["run"]
    colour = {"passed": "green", "failed": "red"}.get(run["verdict"], "yellow")
    terminalreporter.write_sep("-", f"harness verdict: {text.headline(report)}", **{colour: True})
    for line in summary_lines(report):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"report: {finished.html or 'not written (see below)'}")
    explicit = (finished.report.get("model") or {}).get("explicit_sizes")
    if explicit:  # the registry answered no allow-list: say so beside the verdict
        terminalreporter.write_line(f"harness: {explicit}", yellow=True)
    if finished.history is not None:
        terminalreporter.write_line(f"history: {finished.history}")
    if finished.comparison is not None:
        terminalreporter.write_line(finished.comparison.render())
    problem_colour = {"yellow": True} if finished.complete else {"red": True}
    for problem in finished.problems:
        terminalreporter.write_line(f"harness: {problem}", **problem_colour)
    if terminalreporter.config.stash[CONFIG].github_annotations:
        for line in github_annotations(report):
            terminalreporter.write_line(line)
