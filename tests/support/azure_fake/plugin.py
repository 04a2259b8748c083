"""A pytest plugin object that serves a ``--backend azure`` session from the fake.

Pass it to ``pytest.main(..., plugins=[plugin])`` (or pytester's in-process run): it starts a
``responses`` mock for the session, builds one ``FakeAzureML`` for the run's config the first
time the harness asks for a backend, lets ``script`` prepare it (latencies, failures), and hands
the harness an AzureBackend wired to it. ``plugin.fake`` stays readable after the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import responses

from tests.support.azure_fake import FakeAzureML, make_backend

if TYPE_CHECKING:
    from harness.backends.azure import AzureBackend
    from harness.config import HarnessConfig


class AzureFakePlugin:
    def __init__(
        self,
        script: Callable[[FakeAzureML], None] | None = None,
        poll_interval_s: float = 0.0,
        metadata_key: str | None = "system_metadata",
    ) -> None:
        self.script = script
        self.metadata_key = metadata_key  # None: the registry GET as recorded, without any
        self.poll_interval_s = poll_interval_s
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.fake: FakeAzureML | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.mock.start()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.fake is not None:
            self.fake.settle()
        self.mock.stop()
        self.mock.reset()

    @pytest.hookimpl(tryfirst=True)
    def pytest_harness_create_backend(self, harness_config: HarnessConfig) -> AzureBackend:
        if self.fake is None:
            self.fake = FakeAzureML(self.mock, harness_config, metadata_key=self.metadata_key)
            if self.script is not None:
                self.script(self.fake)
        return make_backend(harness_config, poll_interval_s=self.poll_interval_s)

    def sent(self) -> list[Any]:
        """Every request the run sent (empty when no backend was asked for)."""
        return list(self.fake.requests) if self.fake is not None else []
