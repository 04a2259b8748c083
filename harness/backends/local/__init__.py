"""The local backend: the workflow for real on this machine (``LocalBackend``, in ``backend``).

Code that runs in the fine-tune job process is in ``training/``, code that runs in the inference
server in ``server/``; everything else here runs in the harness. Python runs a package's
``__init__`` before any module inside it, so this one imports nothing: whatever it imported
would load in every training rank and every server (the whole backend, psutil and the report
were 0.46 s each). ``LocalBackend`` and its constants load on first use of the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backends.local.backend import (
        DEFAULT_MODEL_NAME,
        LOCAL_CPU,
        LOCAL_GPU,
        LocalBackend,
    )

__all__ = ["DEFAULT_MODEL_NAME", "LOCAL_CPU", "LOCAL_GPU", "LocalBackend"]


def __getattr__(name: str) -> Any:
    """``from harness.backends.local import LocalBackend`` imports the backend then (PEP 562)."""
    if name in __all__:
        from harness.backends.local import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
