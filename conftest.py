"""Loads the harness plugin for this repository's own tests and marks each test by its folder.

When the package is installed, pytest loads the plugin through its ``pytest11`` entry point;
this file only covers a plain checkout (or ``-p no:...`` autoload being disabled).

A folder is a suite: ``tests/unit`` is ``-m unit``, ``tests/e2e`` is ``-m e2e``, ``tests/faults``
is ``-m faults``. The marker comes from the folder alone, so no test file repeats it and no test
of one suite can hide in another's folder.
"""

from __future__ import annotations

import atexit
import gc
import os
from importlib.metadata import entry_points
from pathlib import Path

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


def pytest_configure(config: object) -> None:
    """Live progress logs are for the acceptance suite: the unit suite exercises the waits
    hundreds of times and would drown in their lines (before the logging plugin reads it).
    The unit suite's processes exit without the cyclic collector (see ``_exit_quickly``)."""
    option = getattr(config, "option", None)
    if option is not None and getattr(option, "markexpr", "") == "unit":
        option.log_cli_level = "ERROR"
        atexit.register(_exit_quickly)


def _exit_quickly() -> None:
    """At exit, after pytest's own checks (its last collections look for unraisable
    exceptions): the objects left are frozen, so the interpreter's shutdown frees them by
    reference count without sweeping the whole heap again. With azure-ai-ml, MLflow, pandas
    and datasets loaded, that sweep made each xdist worker's exit take 1.5-2 s, which the
    controller waits for. Every atexit handler still runs."""
    gc.freeze()
