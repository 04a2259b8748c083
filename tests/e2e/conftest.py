"""Everything under tests/e2e is part of the acceptance suite (marker ``e2e``)."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _backend_is_available(backend: object) -> None:
    """Every acceptance test needs the backend: without Azure settings they all skip."""
