"""The pytest plugin's hooks: options, report header, signals, the xdist hand-off, the
controller's teardown and the summary. The session fixture chain lives in ``fixtures.py``
(imported here so that the ``pytest11`` entry point registers both, as pytest-django does).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from harness import config, hooks
from harness.errors import ConfigError
from harness.fixtures import CONFIG, TRACKER
from harness.lifecycle import ResourceTracker

if TYPE_CHECKING:
    from harness.backends.base import Backend

pytest_plugins = ("harness.fixtures",)  # the session fixture chain
SIGTERM = pytest.StashKey[Any]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    config.add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    cfg = config.stash[CONFIG] = _resolve(config)
    shared = getattr(config, "workerinput", {}).get("harness_shared_dir")
    if shared is None and _is_coordinator(config):
        shared = tempfile.mkdtemp(prefix="harness-shared-")
    config.stash[TRACKER] = ResourceTracker(
        shared_dir=Path(shared) if shared else None, delete_timeout_s=cfg.delete_timeout_s)
    config.pluginmanager.register(_InterruptWatch(config.stash[TRACKER]), "harness-interrupts")
    config.stash[SIGTERM] = _handle_sigterm_as_interrupt()


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(SIGTERM, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


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


def _handle_sigterm_as_interrupt() -> Any:
    """SIGTERM (CI cancelling the job) runs the same teardown as Ctrl-C; returns the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the run id and the state directory."""
    node.workerinput["harness_run_id"] = node.config.stash[CONFIG].run_id
    node.workerinput["harness_shared_dir"] = str(node.config.stash[TRACKER].shared_dir)


class _InterruptWatch:
    """Ctrl-C or SIGTERM: the teardown that follows hurries (see ResourceTracker.delete)."""

    def __init__(self, tracker: ResourceTracker) -> None:
        self.tracker = tracker

    def pytest_keyboard_interrupt(self) -> None:
        self.tracker.interrupted = True


def pytest_sessionstart(session: pytest.Session) -> None:
    """``--keep-resources`` keeps what a run created only when something failed."""
    cfg = session.config.stash[CONFIG]
    session.config.stash[TRACKER].keep = lambda: cfg.keep_resources and session.testsfailed > 0


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
    if _is_coordinator(session.config) and tracker.shared_dir is not None:
        if tracker.recorded():
            cfg = session.config.stash[CONFIG]
            backend = session.config.hook.pytest_harness_create_backend(harness_config=cfg)
            tracker.delete_recorded(backend)
            backend.close(stop_owned=True)
        shutil.rmtree(tracker.shared_dir, ignore_errors=True)
    if tracker.problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tracker = config.stash[TRACKER]
    for line in tracker.problems:
        terminalreporter.write_line(f"harness teardown FAILED: {line}", red=True)
    if tracker.problems:
        terminalreporter.write_line("run `python -m harness sweep` to delete leftovers", red=True)
    for line in tracker.kept:
        terminalreporter.write_line(f"harness kept (--keep-resources): {line}", yellow=True)
