"""Throttling and transient 5xx are retried by azure-core's policy, Retry-After honoured.

Nothing in the harness sleeps or retries HTTP by hand; these tests prove the policy is wired
(``retry_total`` reaches every client) by recording the sleeps instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from azure_fake import FakeAzureML, fake_azure

pytestmark = pytest.mark.unit


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


@pytest.fixture()
def env() -> Iterator[tuple[FakeAzureML, Any]]:
    with fake_azure(retry_total=2) as started:
        yield started


def test_throttled_request_waits_retry_after_then_succeeds(env: Any, sleeps: list[float]
                                                           ) -> None:
    fake, backend = env
    fake.inject("registry.model", 429, headers={"Retry-After": "7"})
    card = backend.get_foundation_model("Phi-3-mini-4k-instruct", "15")
    assert card.version == "15"
    assert [c.route for c in fake.requests].count("registry.model") == 2
    assert 7.0 in sleeps


def test_transient_5xx_while_polling_a_job_is_retried(env: Any, sleeps: list[float]) -> None:
    from harness.backends.base import JobRun

    fake, backend = env
    url = fake.add_job("job_5xx")
    fake.job_statuses = ["Completed"]
    fake.inject("job", 503, times=2)
    done = backend.wait_for_job(JobRun("job_5xx", "d", "Queued", url), timeout_s=5)
    assert done.status == "Completed"
    assert len(fake.calls("job", "GET")) == 3  # 503, 503, then the answer
    assert sleeps and all(s > 0 for s in sleeps)  # exponential backoff after the first retry


def test_exhausted_retries_surface_the_service_message(env: Any, sleeps: list[float]) -> None:
    from harness.errors import ComputeError

    fake, backend = env
    fake.inject("compute", 429, times=3, headers={"Retry-After": "1"}, method="GET",
                body={"error": {"code": "TooManyRequests", "message": "throttled, slow down"}})
    with pytest.raises(ComputeError, match="TooManyRequests: throttled, slow down"):
        backend.ensure_compute(object(), "gpu", "Standard_NC24ads_A100_v4", {})
    assert len(fake.calls("compute", "GET")) == 3 and sleeps == [1.0, 1.0]
