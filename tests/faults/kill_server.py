"""A pytest plugin for a fault test (``-p kill_server``): the endpoint's inference server is
killed (SIGKILL, every process of it, as the OOM killer would) just before the last test, so
that test scores a server that died after it was deployed."""

from __future__ import annotations

import time
from typing import Any

import pytest

LAST_TEST = "test_request_without_the_key_is_rejected"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    if item.name != LAST_TEST:
        return
    from harness.backends.local import endpoints
    from harness.backends.local.processes import alive, owned_members

    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    record = endpoints.require(funcargs["backend"].ws, funcargs["online_endpoint"].name).process
    for proc in owned_members(record):
        proc.kill()
    deadline = time.monotonic() + 10
    while alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
