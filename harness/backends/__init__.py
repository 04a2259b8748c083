"""Backend selection; each backend module is imported only when chosen (heavy imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.config import HarnessConfig


def create_backend(config: HarnessConfig) -> Backend:
    """The backend named by ``config.backend``."""
    if config.backend == "azure":
        from harness.backends.azure import AzureBackend

        return AzureBackend(config)
    from harness.backends.local import LocalBackend

    return LocalBackend(config)
