"""Loads the harness plugin for this repository's own tests and marks each test by its folder.

When the package is installed, pytest loads the plugin through its ``pytest11`` entry point;
this file only covers a plain checkout (or ``-p no:...`` autoload being disabled).

A folder is a suite: ``tests/unit`` is ``-m unit``, ``tests/e2e`` is ``-m e2e``, ``tests/faults``
is ``-m faults``. The marker comes from the folder alone, so no test file repeats it and no test
of one suite can hide in another's folder.

A unit run (``-m unit``) is tuned for speed, never for fewer checks: quiet live logs, whole
modules per xdist worker, and a heap frozen once pytest's last look for unraisable exceptions
is done.
"""

from __future__ import annotations

import gc
import os
import shlex
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]  # the unit tests drive the plugin through pytester
_installed = any(ep.value == "harness.plugin" for ep in entry_points(group="pytest11"))
if not _installed or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
    pytest_plugins.append("harness.plugin")


SUITES = ("unit", "e2e", "faults")  # each is a folder under tests/ and a marker in pytest.ini
TESTS = Path(__file__).resolve().parent / "tests"


def suite_of(path: Path) -> str | None:
    """The suite a test file belongs to: the name of its folder directly under tests/."""
    try:
        folder = path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return folder if folder in SUITES else None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``-m <suite>`` collects only that suite's folder: the marker comes from the folder
    alone, so no test elsewhere can match, and importing the other folders' test modules
    (azure-ai-ml, MLflow, ...) only to deselect them cost ``-m e2e`` 2.4 s of its start."""
    wanted = getattr(config.option, "markexpr", "")
    suite = suite_of(collection_path)
    if wanted in SUITES and suite is not None and suite != wanted:
        return True
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test with its folder's suite, before ``-m`` selects (collection time)."""
    suite = suite_of(item.path)
    if suite is not None:
        item.add_marker(suite)


_UNIT_RUN = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Live progress logs are for the acceptance suite: the unit suite exercises the waits
    hundreds of times and would drown in their lines (before the logging plugin reads it).
    The unit suite's processes end without sweeping their heap again (``pytest_unconfigure``)."""
    if getattr(config.option, "markexpr", "") == "unit":
        config.option.log_cli_level = "ERROR"
        config.stash[_UNIT_RUN] = True


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A unit run's end, once pytest's own collection in its ``pytest_unconfigure`` has
    swept the whole heap for unraisable exceptions: the objects left are frozen, so the
    collection in pytest's cleanup and the interpreter's shutdown look only at what is made
    after, and free the rest by reference count. With azure-ai-ml, MLflow, pandas and
    datasets loaded, each sweep of the heap takes about 0.4 s; an xdist worker's exit took
    1.5-2 s, which the controller waits for. Every cleanup and atexit handler still runs."""
    if config.stash.get(_UNIT_RUN, False):
        gc.freeze()


def hands_out_whole_modules(config: pytest.Config) -> bool:
    """A unit run under pytest-xdist gives each worker whole modules (``--dist loadscope``)
    unless ``--dist`` was chosen: twelve unit modules have module-scoped fixtures (the report
    page's browser, a sweep test's MLflow store, ...), which ``load``, handing out one test
    at a time, set up in both workers. 0.6 s less a run, 6 of 7 alternated pairs (2026-12-04).
    ``--dist`` counts as chosen on the command line and in ``PYTEST_ADDOPTS`` (a CI job's
    usual place), where pytest reads it too."""
    given = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    chosen = any(a == "-d" or a.startswith("--dist") for a in given)
    return config.stash.get(_UNIT_RUN, False) and not chosen


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if not hands_out_whole_modules(config):
        return None  # xdist's own choice, from --dist
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    return LoadScopeScheduling(config, log)
