"""The one atomic file write and the one JSON read every state file goes through.

State files are read by other processes (xdist workers, the sweep, a job's parent) at any
moment: a reader must never see half a file, and a file holding keys must never be readable by
anyone but the owner, not even for the instant between create and chmod.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PRIVATE = 0o600


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to a temporary file created with ``mode``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    write_text_atomic(path, json.dumps(data, indent=1), mode)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when the file does not exist (yet)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}
