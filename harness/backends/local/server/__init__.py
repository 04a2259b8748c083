"""Code that runs inside the local endpoint's inference server process, started as
``python -m harness.backends.local.server`` (``azmlinfsrv`` bound to loopback): the scoring
script, the chat-completion contract it enforces and the text generator.

The harness only starts that process; the names below are the interface between the two.
Importing this package imports nothing heavy.
"""

import json
import os
import time

BIND_HOST = "127.0.0.1"
KEYS_ENV = "HARNESS_ENDPOINT_KEYS"  # the endpoint keys the scoring script accepts (never logged)
DEVICE_ENV = "HARNESS_DEVICE"  # the torch device the model is served on
EXIT_INIT_FAILED = 3  # azmlinfsrv's exit code when init() raised
STARTUP_ENV = "HARNESS_STARTUP_MARKS"  # a JSON file of start-up moments (benchmarks/local_e2e.py)


def mark(step: str) -> None:
    """Adds "``step`` ended now" (epoch seconds) to the start-up marks file, when one is set.
    The launcher and the gunicorn worker write in turn, never at once: read, add, replace."""
    path = os.environ.get(STARTUP_ENV)
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as handle:
            marks = json.load(handle)
    except (OSError, ValueError):
        marks = {}
    marks[step] = time.time()
    with open(f"{path}.part", "w", encoding="utf-8") as handle:
        json.dump(marks, handle)
    os.replace(f"{path}.part", path)
