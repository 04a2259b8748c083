"""The one atomic write and the JSON reads every state file and report goes through.

A reader (another xdist worker, the sweep, a job's parent, the next night's comparison, a CI
step uploading artifacts) must never see half a file, so every file the harness hands to
someone else is written to a temporary sibling and renamed over the target, which POSIX makes
atomic. A file holding keys is never readable by anyone else, not even for an instant: the
temporary file starts private (0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

PRIVATE = 0o600


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory.

    ``mode`` applies to the result; use ``PRIVATE`` for anything that holds a secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Any, mode: int = 0o644) -> Path:
    """Pretty, key-sorted JSON, atomically (people read and diff these files)."""
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def read_json(path: Path, error: type[HarnessError] = HarnessError) -> Any:
    """The parsed content of a JSON file; a missing or malformed file raises ``error``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"{path} is not readable JSON ({exc}); pass a JSON file") from None


def read_state(path: Path) -> dict[str, Any]:
    """A state file's JSON object; {} while it does not exist (yet)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}
