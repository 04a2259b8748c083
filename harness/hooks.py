"""Hooks a conftest can implement to change how the harness builds its backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.config import HarnessConfig


@pytest.hookspec(firstresult=True)
def pytest_harness_create_backend(harness_config: HarnessConfig) -> Backend | None:
    """Return the backend for this run (also used by the coordinator to clean up)."""
