"""The pytest plugin's hooks: options, report header, signals, the xdist hand-off, the
controller's teardown and the summary. The session fixture chain lives in ``fixtures.py``
(imported here so that the ``pytest11`` entry point registers both, as pytest-django does).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.junitxml import xml_key  # what record_testsuite_property uses, at session end

from harness import config, hooks, verdict
from harness.errors import ConfigError, HarnessError
from harness.fixtures import CONFIG, PROGRESS, TRACKER
from harness.lifecycle import ResourceTracker, RunMark, runs_root
from harness.progress import Progress, events_path, log_to_file
from harness.report.junit import junit_properties

if TYPE_CHECKING:
    from harness.backends.base import Backend

pytest_plugins = ("harness.fixtures",)  # the session fixture chain
SIGNALS = pytest.StashKey["_Signals"]()
LOG_FILE = pytest.StashKey[logging.Handler]()
FINISHED = pytest.StashKey[verdict.Finished]()
MESSAGE_CHARS = 2000


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    config.add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    cfg = config.stash[CONFIG] = _resolve(config)
    mark = RunMark(runs_root(cfg.workspace_dir) / cfg.run_id)
    shared = getattr(config, "workerinput", {}).get("harness_shared_dir")
    if shared is None and _is_coordinator(config):
        shared = str(_hold(mark, cfg).directory)  # the run's directory: the sweep finds it
    config.stash[PROGRESS] = progress = _progress(config, cfg)
    config.stash[TRACKER] = tracker = ResourceTracker(
        shared_dir=Path(shared) if shared else None, run_mark=mark,
        delete_timeout_s=cfg.delete_timeout_s, keep_on_failure=cfg.keep_resources,
        progress=progress)
    config.pluginmanager.register(_RunWatch(tracker, progress, _is_worker(config)),
                                  "harness-run-watch")
    signals = config.stash[SIGNALS] = _Signals(config, tracker)
    config.pluginmanager.register(signals, "harness-signals")
    signals.install()


def _hold(mark: RunMark, cfg: config.HarnessConfig) -> RunMark:
    """The xdist controller's mark, which also makes the directory the workers share."""
    try:
        return mark.hold()
    except OSError as exc:
        if cfg.sources["workspace_dir"].startswith("default"):
            return mark  # the local backend names the unusable default when it starts
        raise pytest.UsageError(
            f"cannot create the run's directory {mark.directory} ({exc.strerror}); "
            "pass a writable directory with --workspace") from None


QUIET_LIBRARIES = ("azure", "urllib3", "msal", "mlflow", "alembic", "filelock", "matplotlib",
                   "fsspec", "datasets", "httpx", "git", "PIL")


def _quiet_libraries() -> None:
    """Live logs at INFO are for the harness's progress; libraries' INFO chatter (azure-core
    logs every HTTP request) stays out unless the user set their loggers' levels."""
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(logging.WARNING)


def _progress(config: pytest.Config, cfg: config.HarnessConfig) -> Progress:
    """The run's recorder (one events file per run id) and its log file; the process that
    sees every test starts the record afresh."""
    path = events_path(cfg.report_dir, cfg.run_id)
    if not _is_worker(config):
        path.unlink(missing_ok=True)  # a run id given again starts a new record
    config.stash[LOG_FILE] = log_to_file(cfg.report_dir / "harness.log")
    _quiet_libraries()
    return Progress(path, {"run_id": cfg.run_id, "backend": cfg.backend,
                           "options": cfg.report_options()})


def pytest_unconfigure(config: pytest.Config) -> None:
    signals = config.stash.get(SIGNALS, None)
    if signals is not None:
        signals.restore()
    tracker = config.stash.get(TRACKER, None)
    if tracker is not None:
        if _is_coordinator(config) and tracker.backend is not None:
            tracker.backend.close(stop_owned=True)
        if tracker.run_mark is not None:
            tracker.run_mark.release()
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
        if not cfg.sources["workspace_dir"].startswith("default"):
            config.check_workspace(cfg)  # the default is checked when the backend starts
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return cfg


def _is_coordinator(pytest_config: pytest.Config) -> bool:
    """True in the xdist controller process (``-n N`` with N workers)."""
    return bool(getattr(pytest_config.option, "numprocesses", None)) and not _is_worker(
        pytest_config)


def _is_worker(pytest_config: pytest.Config) -> bool:
    return hasattr(pytest_config, "workerinput")


class _Signals:
    """Ctrl-C and SIGTERM end the run as Ctrl-C does, and its teardown still runs.

    CI cancels a job with SIGINT, SIGTERM about 7.5 s later, then SIGKILL. The first signal
    raises KeyboardInterrupt where that is safe (collection, a test's setup or call), so
    pytest's teardown runs and hurries (see ResourceTracker.delete); where an exception would
    break a deletion half-way or escape pytest as a traceback (a deletion, a teardown,
    ``pytest_sessionfinish`` and after), it only makes the rest hurry and is raised at the
    end of that teardown. A second signal starts no more deletions and names what is left
    for the sweep. The xdist controller passes the first signal on to its workers, which
    are its child processes, so that they stop now instead of when the controller's
    shutdown gives up waiting for them.
    """

    def __init__(self, config: pytest.Config, tracker: ResourceTracker) -> None:
        self.config, self.tracker = config, tracker
        self.previous: dict[int, Any] = {}
        self.signalled = False
        self.safe = True  # raising now unwinds into pytest's handling of Ctrl-C
        self.finishing = False  # pytest_sessionfinish and after: never raise
        self.deferred = False  # to raise at the end of the test phase under way
        self.exitstatus = int(pytest.ExitCode.INTERRUPTED)

    def install(self) -> None:
        atexit.register(self._exit_now)  # registered first, so it runs last
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self.handle)
                             for sig in (signal.SIGINT, signal.SIGTERM)}
        self.tracker.say = self._say

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if not self.signalled:  # e.g. a pytester run inside another pytest
            atexit.unregister(self._exit_now)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled:
            self.tracker.abandon()
            return
        self.signalled = self.tracker.interrupted = True
        if _is_coordinator(self.config):
            _signal_children(signal.SIGTERM)
        if self.finishing:
            return
        if self.safe and not self.tracker.deleting:
            raise KeyboardInterrupt(f"signal {signum}")
        self.deferred = True

    def _phase(self, safe: bool) -> Generator[None, Any, Any]:
        self.safe = safe
        try:
            return (yield)
        finally:
            self.safe = True
            if self.deferred:
                self.deferred = False
                raise KeyboardInterrupt("signal during a deletion or teardown")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self) -> Generator[None, Any, Any]:
        return (yield from self._phase(safe=True))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self) -> Generator[None, Any, Any]:
        return (yield from self._phase(safe=True))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self) -> Generator[None, Any, Any]:
        return (yield from self._phase(safe=False))

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """The controller deletes before xdist waits for its workers (``pytest_sessionfinish``
        below runs first); interrupted, they may still be winding down then, so what they
        recorded meanwhile is deleted once they are gone."""
        self.finishing = True
        yield
        if self.signalled:
            _delete_recorded(self.config)
        self.exitstatus = int(session.exitstatus)

    def _exit_now(self) -> None:
        """atexit, in an interrupted run: exit without Python's finalization, which takes
        seconds once mlflow and datasets are loaded, while CI's SIGKILL is on its way (and
        the xdist controller waits for its workers). Everything was written and deleted."""
        if self.signalled:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(self.exitstatus)

    def _say(self, line: str) -> None:
        """A line on the terminal now, even while pytest captures output."""
        capture = self.config.pluginmanager.getplugin("capturemanager")
        writer = self.config.get_terminal_writer()
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if writer.width_of_current_line:
                writer.line()
            writer.line(line, yellow=True)
            writer.flush()


def _signal_children(sig: signal.Signals) -> None:
    """The xdist controller's children are its workers (it starts nothing else)."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            child.send_signal(sig)


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

    def __init__(self, tracker: ResourceTracker, progress: Progress, worker: bool) -> None:
        self.tracker, self.progress, self.worker = tracker, progress, worker

    def pytest_keyboard_interrupt(self) -> None:
        self.tracker.interrupted = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.tracker.failure()
        if self.worker or (report.when != "call" and report.outcome == "passed"):
            return
        message = report.longreprtext[-MESSAGE_CHARS:] if report.failed else ""
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        self.progress.record_if_used("test", nodeid=report.nodeid, outcome=outcome,
                                     duration_s=report.duration, message=message)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The xdist controller makes its backend now: whatever it must load to delete is then
    ready when an interrupted run needs it (see LocalBackend)."""
    cfg = session.config.stash[CONFIG]
    if _is_coordinator(session.config) and not cfg.missing_azure_settings():
        with contextlib.suppress(HarnessError):  # the workers' backend fixture reports it
            _coordinator_backend(session.config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[CONFIG].header_lines()


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
    if not _is_worker(session.config) and session.config.stash[PROGRESS].used:
        _finish(session, tracker.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED)


def _finish(session: pytest.Session, interrupted: bool) -> None:
    """Write the report whatever happened; a failure here is said, never raised."""
    config, cfg = session.config, session.config.stash[CONFIG]
    config.stash[PROGRESS].record("run_ended", exit_status=int(session.exitstatus),
                                  interrupted=interrupted)
    try:
        finished = config.stash[FINISHED] = verdict.finish(cfg, interrupted)
    except Exception as exc:  # the run's outcome stands; the summary says what broke
        logging.getLogger("harness").error("the run report could not be written: %s", exc)
        return
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        for name, value in junit_properties(finished.report):
            xml.add_global_property(name, value)


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
    run = finished.report["run"]
    terminalreporter.write_sep("-", f"harness verdict: {run['verdict']}")
    terminalreporter.write_line(f"report: {finished.html}")
    if finished.history is not None:
        terminalreporter.write_line(f"history: {finished.history}")
    if finished.comparison is not None:
        terminalreporter.write_line(finished.comparison.render())
    for problem in finished.problems:
        terminalreporter.write_line(f"harness: {problem}", yellow=True)
