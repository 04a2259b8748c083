"""The environment of the processes the local backend starts.

Child processes must never reach the Hugging Face hub (a hub id would retry for tens of
seconds before failing) and must import this checkout of the harness even when it is not
installed, so both are set here once for every child.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import harness

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
PROJECT_ROOT = Path(harness.__file__).resolve().parent.parent


def python() -> str:
    """The interpreter running the harness: children share its installed packages."""
    return sys.executable


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of this process's environment, offline, with the harness importable."""
    env = dict(os.environ)
    env.update(OFFLINE)
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env


def set_offline() -> None:
    """For code running in this process (the child entries): the same offline switches."""
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)
