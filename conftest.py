"""Loads the harness plugin for this repository's own tests.

When the package is installed, pytest loads the plugin through its ``pytest11`` entry point;
this file only covers a plain checkout (or ``-p no:...`` autoload being disabled).
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

pytest_plugins = ["pytester"]  # the unit tests drive the plugin through pytester
_installed = any(ep.value == "harness.plugin" for ep in entry_points(group="pytest11"))
if not _installed or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
    pytest_plugins.append("harness.plugin")


def pytest_configure(config: object) -> None:
    """Live progress logs are for the acceptance suite: the unit suite exercises the waits
    hundreds of times and would drown in their lines (before the logging plugin reads it)."""
    option = getattr(config, "option", None)
    if option is not None and getattr(option, "markexpr", "") == "unit":
        option.log_cli_level = "ERROR"
