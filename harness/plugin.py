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

from harness import config, hooks
from harness.errors import ConfigError
from harness.fixtures import CONFIG, TRACKER
from harness.lifecycle import ResourceTracker, RunMark, runs_root

if TYPE_CHECKING:
    from harness.backends.base import Backend

pytest_plugins = ("harness.fixtures",)  # the session fixture chain
SIGNALS = pytest.StashKey["_Signals"]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    config.add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    cfg = config.stash[CONFIG] = _resolve(config)
    mark = RunMark(runs_root(cfg.workspace_dir) / cfg.run_id)
    shared = getattr(config, "workerinput", {}).get("harness_shared_dir")
    if shared is None and _is_coordinator(config):
        shared = str(_hold(mark).directory)  # the run's directory: the sweep finds it
    config.stash[TRACKER] = ResourceTracker(
        shared_dir=Path(shared) if shared else None, run_mark=mark,
        delete_timeout_s=cfg.delete_timeout_s, keep_on_failure=cfg.keep_resources)
    config.pluginmanager.register(_RunWatch(config.stash[TRACKER]), "harness-run-watch")
    signals = config.stash[SIGNALS] = _Signals(config, config.stash[TRACKER])
    config.pluginmanager.register(signals, "harness-signals")
    signals.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    signals = config.stash.get(SIGNALS, None)
    if signals is not None:
        signals.restore()
    tracker = config.stash.get(TRACKER, None)
    if tracker is not None and tracker.run_mark is not None:
        tracker.run_mark.release()


def _hold(mark: RunMark) -> RunMark:
    try:
        return mark.hold()
    except OSError as exc:
        raise pytest.UsageError(
            f"cannot create the run's directory {mark.directory} ({exc.strerror}); "
            "pass a writable directory with --workspace") from None


def _resolve(pytest_config: pytest.Config) -> config.HarnessConfig:
    """Options > env > ini > defaults; xdist workers take the coordinator's run id."""
    run_id = getattr(pytest_config, "workerinput", {}).get("harness_run_id")
    if run_id and pytest_config.getoption("harness_run_id") is None:
        pytest_config.option.harness_run_id = run_id
    try:
        return config.from_pytest(pytest_config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _is_coordinator(pytest_config: pytest.Config) -> bool:
    """True in the xdist controller process (``-n N`` with N workers)."""
    return bool(getattr(pytest_config.option, "numprocesses", None)) and not hasattr(
        pytest_config, "workerinput")


def is_xdist_worker(pytest_config: pytest.Config) -> bool:
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

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Interrupted, the controller deletes while the workers still wind down (xdist waits
        for them next); what they record meanwhile is deleted after them, as usual."""
        self.finishing = True
        if self.signalled:
            _delete_recorded(self.config)
        yield
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
    exists; under xdist the controller sees every worker's reports)."""

    def __init__(self, tracker: ResourceTracker) -> None:
        self.tracker = tracker

    def pytest_keyboard_interrupt(self) -> None:
        self.tracker.interrupted = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.tracker.failure()




def pytest_sessionstart(session: pytest.Session) -> None:
    """The xdist controller makes its backend now: whatever it must load to delete is then
    ready when an interrupted run needs it (see LocalBackend)."""
    cfg = session.config.stash[CONFIG]
    if _is_coordinator(session.config) and not cfg.missing_azure_settings():
        _coordinator_backend(session.config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[CONFIG].header_lines()


@pytest.hookimpl(trylast=True)
def pytest_harness_create_backend(harness_config: config.HarnessConfig) -> Backend:
    from harness.backends import create_backend

    return create_backend(harness_config)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Coordinator: delete what the workers recorded, after the last one is done."""
    tracker = session.config.stash[TRACKER]
    _delete_recorded(session.config)
    if _is_coordinator(session.config) and tracker.backend is not None:
        tracker.backend.close(stop_owned=True)
    if tracker.problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    tracker = config.stash[TRACKER]
    for line in tracker.problems:
        terminalreporter.write_line(f"harness teardown FAILED: {line}", red=True)
    if tracker.problems:
        terminalreporter.write_line("run `python -m harness sweep` to delete leftovers", red=True)
    for line in tracker.kept:
        terminalreporter.write_line(f"harness kept (--keep-resources): {line}", yellow=True)
