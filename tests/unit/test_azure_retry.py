"""Throttling and transient 5xx are retried by azure-core's policy, Retry-After honoured.

Nothing in the harness sleeps or retries HTTP by hand; these tests prove the policy is wired
(``retry_total`` reaches every client) by recording the sleeps instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.azure_fake import AzureRig, fake_azure


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


@pytest.fixture()
def rig() -> Iterator[AzureRig]:
    with fake_azure(retry_total=2) as started:
        yield started


def test_throttled_request_waits_retry_after_then_succeeds(
    rig: AzureRig, sleeps: list[float]
) -> None:
    rig.fake.router.inject("registry.model", 429, headers={"Retry-After": "7"})
    card = rig.backend.get_foundation_model("Phi-4", "8")
    assert card.version == "8"
    assert len(rig.fake.calls("registry.model")) == 2
    assert 7.0 in sleeps


def test_transient_5xx_while_polling_a_job_is_retried(rig: AzureRig, sleeps: list[float]) -> None:
    from harness.backends.base import JobRun

    url = rig.fake.jobs.add_job("job_5xx")
    rig.fake.jobs.statuses = ["Completed"]
    rig.fake.router.inject("job", 503, times=2)
    done = rig.backend.wait_for_job(JobRun("job_5xx", "d", "Queued", url), timeout_s=5)
    assert done.status == "Completed"
    assert len(rig.fake.calls("job", "GET")) == 3  # 503, 503, then the answer
    assert sleeps and all(s > 0 for s in sleeps)  # exponential backoff after the first retry


def test_exhausted_retries_surface_the_service_message(rig: AzureRig, sleeps: list[float]) -> None:
    from harness.errors import ComputeError

    card = rig.backend.get_foundation_model("Phi-4", "8")
    rig.fake.router.inject(
        "compute",
        429,
        times=3,
        headers={"Retry-After": "1"},
        method="GET",
        body={"error": {"code": "TooManyRequests", "message": "throttled, slow down"}},
    )
    with pytest.raises(ComputeError, match="TooManyRequests: throttled, slow down"):
        rig.backend.ensure_compute(card, "gpu", "Standard_NC24ads_A100_v4", {})
    assert len(rig.fake.calls("compute", "GET")) == 3 and sleeps == [1.0, 1.0]
