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
