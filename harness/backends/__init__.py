"""Backend selection; each backend module is imported only when chosen (heavy imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.config import HarnessConfig


def create_backend(config: HarnessConfig, *, warm_up: bool = True) -> Backend:
    """The backend named by ``config.backend``. ``warm_up``: open its slow stores in the
    background for a session's later calls (the local MLflow store; the Azure backend opens
    nothing in advance); a one-shot command passes False, its first call opens them itself."""
    if config.backend == "azure":
        from harness.backends.azure import AzureBackend

        return AzureBackend(config)
    from harness.backends.local import LocalBackend

    return LocalBackend(config, warm_up=warm_up)
