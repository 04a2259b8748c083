"""What Ctrl-C and SIGTERM do to a run: it ends as Ctrl-C ends it, and its teardown still
deletes what the run created (CI cancels a job with SIGINT, SIGTERM 7.5 s later, SIGKILL).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from harness.backends.base import dead_parts
from harness.lifecycle import ResourceTracker

if TYPE_CHECKING:
    from harness.backends.base import Backend

WATCH_S = 0.5  # how often the xdist controller looks for a dead job or server
RETRY_S = 0.05  # a signal that came during a finalizer is handled again this much later


class Signals:
    """Ctrl-C and SIGTERM end the run as Ctrl-C does, and its teardown still runs.

    CI cancels a job with SIGINT, SIGTERM about 7.5 s later, then SIGKILL. The first signal
    raises KeyboardInterrupt where that is safe (a test's setup or call, where the fixtures
    wait), so pytest's teardown runs and hurries (see ResourceTracker.delete). Elsewhere an
    exception would break a deletion half-way or escape as a traceback, so it is raised
    later: at the end of a teardown (which only hurries meanwhile); at the start of the next
    setup or call when pytest was writing a report (an exception inside its ``ast`` calls is
    a SystemError, an INTERNALERROR); at the end of collection (which rewrites modules with
    ``ast`` too); a moment later when a finalizer ran (Python would print the exception as
    "Exception ignored" and drop it); from ``pytest_sessionfinish`` on, never. The xdist
    controller runs no test and only waits for its workers: it is interrupted at once. A
    second signal starts no more deletions and names what is left for the sweep. The xdist
    controller passes the first signal on to its workers, which are its child processes, so
    that they stop now instead of when the controller's shutdown gives up waiting for them.
    A dead worker, job or server ends an xdist run the same way (``end_run``).
    """

    def __init__(
        self,
        config: pytest.Config,
        tracker: ResourceTracker,
        coordinator: bool,
        delete_recorded: Callable[[], None],
    ) -> None:
        self.config, self.tracker = config, tracker
        self.coordinator, self.delete_recorded = coordinator, delete_recorded
        self.previous: dict[int, Any] = {}
        self.signalled = False
        self.ended = False  # something the run needs died (see end_run)
        self.ended_by = ""  # what died, for the report's reason
        self.ending = threading.Lock()  # end_run's check and mark, from either thread
        self.safe = coordinator  # raising now unwinds into pytest's handling of Ctrl-C
        self.finishing = False  # pytest_sessionfinish and after: never raise
        self.deferred = False  # to raise at the end of the test phase under way
        self.retrying = False  # the first signal, sent again (it came during a finalizer)
        self.exitstatus = int(pytest.ExitCode.INTERRUPTED)

    def install(self) -> None:
        atexit.register(self._exit_now)  # registered first, so it runs last
        if threading.current_thread() is threading.main_thread():
            self.previous = {
                sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)
            }
        self.tracker.say = self._say

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if not (self.signalled or self.ended):  # e.g. a pytester run inside another pytest
            atexit.unregister(self._exit_now)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled and not self.retrying:
            self.tracker.abandon()
            return
        if not self.signalled and self.coordinator:
            _signal_children(signal.SIGTERM)
        self.signalled = self.tracker.interrupted = True
        self.retrying = False
        if self.finishing:
            return
        if self.safe and not self.tracker.deleting:
            if not _in_finalizer(frame):
                raise KeyboardInterrupt(f"signal {signum}")
            self.retrying = True  # the same signal again in a moment, out of the finalizer
            threading.Timer(RETRY_S, os.kill, (os.getpid(), signum)).start()
            return
        self.deferred = True

    def _phase(self, safe: bool) -> Generator[None, Any, Any]:
        if safe and self.deferred:  # a signal came while pytest worked between phases
            self.deferred = False
            raise KeyboardInterrupt("signal between tests")
        self.safe = safe
        try:
            return (yield)
        finally:
            self.safe = self.coordinator
            if self.deferred:
                self.deferred = False
                raise KeyboardInterrupt("signal during a deletion, a teardown or a finalizer")

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self) -> Generator[None, Any, Any]:
        """Collection imports and rewrites test modules (``ast``): a signal takes effect when
        it ends."""
        return (yield from self._phase(safe=False))

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
        if self.signalled or self.ended:
            self.delete_recorded()
        self.exitstatus = int(session.exitstatus)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        """xdist, in the controller: a worker that died (SIGKILL, the OOM killer, a crash) ends
        the run. ``keyboard-interrupt`` is a worker ending on our own signal."""
        if error is None or error == "keyboard-interrupt" or self.signalled:
            return
        if not (self.coordinator and self.tracker.progress.used):
            return
        from harness.fixtures import CONFIG

        log = self.config.stash[CONFIG].report_dir / "harness.log"
        what = f"pytest-xdist worker {node.gateway.id} died ({error})"
        self.end_run(what, f"its log lines are in {log}")

    def watch_parts(self, backend: Backend) -> None:
        """The controller's thread, once its workers use the harness and until the session
        ends: a job or a deployed server of the run that dies on its own ends the run as a
        dead worker does (``backend.dead_parts``), instead of each worker finding out one
        test at a time while the other goes on with work that can no longer count."""
        while not (self.finishing or self.signalled or self.ended):
            try:
                dead = dead_parts(backend)
            except Exception as exc:  # a thread: say why it stopped watching, no traceback
                logging.getLogger("harness").warning("stopped watching the run's parts: %s", exc)
                return
            if dead:
                self.end_run(dead[0])
                return
            time.sleep(WATCH_S)

    def last_look(self, backend: Backend) -> None:
        """The controller, as its session finishes: a part that died since the watcher's last
        look ends the run just the same. The tests that needed it may fail within that
        half-second and finish the run (a killed server fails the scoring tests at once),
        and the same death must give the same verdict, reason and history whatever the
        timing. xdist's loop is over and xdist stops the workers next: none is signalled."""
        if self.ended or self.signalled:
            return
        try:
            dead = dead_parts(backend)
        except Exception as exc:  # the run's outcome stands; say why it was not looked at
            logging.getLogger("harness").warning("could not look at the run's parts: %s", exc)
            return
        if dead:
            self.end_run(dead[0], workers_running=False)

    def end_run(self, what: str, where: str = "", workers_running: bool = True) -> None:
        """Something the run needs died: end the run now, as an interruption does. Its tests
        are reported as failed or interrupted, the workers are stopped (SIGTERM, while
        ``workers_running``), no worker replaces a dead one (it could only fail on what the
        dead one left half-made), what the run created is deleted, and every process exits
        without Python's finalization. Called from the watcher's thread and from the main
        thread (``last_look``): once."""
        with self.ending:
            if self.ended or self.finishing or self.signalled:
                return
            self.ended = True
        self.ended_by = what
        text = (
            f"{what}; ending the run: the workers are stopped and what the run created is "
            "deleted" + (f"; {where}" if where else "")
        )
        self._say(f"harness: {text}")
        self.tracker.progress.record_if_used("note", level="error", text=text)
        self.tracker.interrupted = True  # the deletions hurry, the run is not history
        if workers_running:
            _no_replacement(self.config)
            _signal_children(signal.SIGTERM)

    def _exit_now(self) -> None:
        """atexit, in an interrupted run or one that something dead ended (``end_run``): exit
        without Python's finalization, which takes seconds once mlflow and datasets are
        loaded, while CI's SIGKILL is on its way (and the xdist controller waits for its
        workers). Everything was written and deleted.
        A session that never used the harness exits as Python does (other plugins' atexit
        work, coverage data say, must not be skipped on its account)."""
        if (self.signalled or self.ended) and self.tracker.progress.used:
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


def _in_finalizer(frame: FrameType | None) -> bool:
    """Whether the signal came while a finalizer ran (``__del__``, a ``weakref.finalize``
    callback): an exception raised there is printed as "Exception ignored" and lost."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (
            code.co_name == "__call__" and code.co_filename.endswith("weakref.py")
        ):
            return True
        frame = frame.f_back
    return False


def _no_replacement(config: pytest.Config) -> None:
    """No worker replaces a dead one: xdist reads ``--max-worker-restart`` once, at start,
    into its session's ``_max_worker_restart``, so that is what is lowered (if it is there)."""
    dsession = config.pluginmanager.getplugin("dsession")
    if dsession is not None and hasattr(dsession, "_max_worker_restart"):
        dsession._max_worker_restart = 0


def _signal_children(sig: signal.Signals) -> None:
    """The xdist controller's children are its workers (it starts nothing else)."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            child.send_signal(sig)
