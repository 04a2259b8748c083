"""Why the acceptance suite ran without its configuration file, and how to fix it.

pytest picks its rootdir, and the ini file it loads, from the first path-like arguments of
the command line. A path-valued option written with a space (``--history /shared/history``)
hands pytest that path as an argument too: once the directory exists (the second night) it
becomes the rootdir, ``pytest.ini`` is not found, and the suite runs without strict markers,
live logs or its markers, with test ids relative to the wrong folder (pytest-dev/pytest#8846).
The fix is ``--history=/shared/history``; the plugin stops the run instead of letting it
pass half-configured.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from harness.config import PATH_OPTIONS


def spaced_path_options(args: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) of each path-valued option given as two arguments instead of ``=``."""
    return [
        (flag, value)
        for flag, value in itertools.pairwise(args)
        if flag in PATH_OPTIONS and not value.startswith("-")
    ]


def lost_configuration(args: Sequence[str], rootdir: Path) -> str:
    """The message that stops a run of the suite that loaded no configuration file."""
    found = spaced_path_options(args)
    head = (
        f"the acceptance suite runs without its configuration: pytest loaded no pytest.ini "
        f"(rootdir: {rootdir}), so strict markers, live logs and the suite's markers are off"
    )
    if found:
        given = ", ".join(f"`{flag} {value}`" for flag, value in found)
        fixed = " ".join(f"{flag}={value}" for flag, value in found)
        return (
            f"{head}. Cause: a path-valued option given without `=` ({given}): pytest took "
            f"the path for a test path and its rootdir from it (pytest-dev/pytest#8846). "
            f"Fix: write {fixed}"
        )
    return (
        f"{head}. Cause: pytest was started outside the checkout, or a path-valued option "
        "was given without `=`. Fix: run from the checkout, write every path option as "
        "--option=value, or pass -c path/to/pytest.ini"
    )
