"""The switches that keep every local process off the Hugging Face hub.

A hub id would retry for tens of seconds before failing, and a nightly run must not depend on
the network: every child the backend starts gets them (``processes.child_env``), and code that
loads a model in its own process (a training rank, the model build, ``register-model``) sets
them first. Standard library only, so that a rank or a server can import it.
"""

from __future__ import annotations

import os

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def set_offline() -> None:
    """For code that loads models in this process: the same offline switches as children."""
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)
