"""The fine-tune cluster on Azure: reuse, creation with the LowPriority fallback, and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azure_fake import FakeAzureML, azure_config, fake_azure

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
TAGS = {"harness-run-id": "hfake0001", "harness-created": "2026-01-01T00:00:00+00:00",
        "harness-expires": "2026-01-01T06:00:00+00:00"}


@pytest.fixture(scope="module")
def card() -> Any:
    from harness.tags import model_card

    tags = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())["tags"]
    return model_card("Phi-3-mini-4k-instruct", "15", "azureml://registries/azureml/models/"
                      "Phi-3-mini-4k-instruct/versions/15", tags)


@pytest.fixture()
def env() -> Iterator[tuple[FakeAzureML, Any]]:
    with fake_azure() as started:
        yield started


def _tiers(fake: FakeAzureML) -> list[str]:
    return [c.body["properties"]["properties"]["vmPriority"] for c in fake.calls("compute", "PUT")]


def test_existing_cluster_is_reused_and_never_deleted(env: Any, card: Any) -> None:
    from harness.backends.base import Compute

    fake, backend = env
    fake.add_compute("gpu", "standard_nc48ads_a100_v4")  # case differs from the allow-list
    compute = backend.ensure_compute(card, "gpu", None, TAGS)
    assert compute == Compute("gpu", "standard_nc48ads_a100_v4", 2, False, "Succeeded")
    assert not fake.calls("compute", "PUT") and not fake.calls("compute", "DELETE")


def test_refused_dedicated_cluster_falls_back_to_low_priority(env: Any, card: Any) -> None:
    fake, backend = env
    fake.compute_create_fails = {"Dedicated"}
    compute = backend.ensure_compute(card, "gpu", "Standard_NC96ads_A100_v4", TAGS)
    assert _tiers(fake) == ["Dedicated", "LowPriority"]
    assert compute.created_by_harness and compute.gpus_per_node == 4
    backend.delete_compute(compute.name, 5)
    assert fake.calls("compute", "DELETE")


def test_quota_refusal_in_every_tier_says_quota_and_what_to_do(env: Any, card: Any) -> None:
    from harness.errors import ComputeError

    fake, backend = env
    fake.compute_create_fails = {"Dedicated", "LowPriority"}
    with pytest.raises(ComputeError) as failure:
        backend.ensure_compute(card, "gpu", None, TAGS)
    message = str(failure.value)
    assert "quota" in message and "Standard_NC24ads_A100_v4" in message
    assert "exceeding approved" in message  # the service's own words
    assert "--compute-sku" in message and "quota increase" in message
    assert _tiers(fake) == ["Dedicated", "LowPriority"]


def test_created_cluster_that_failed_provisioning_is_deleted_again(env: Any, card: Any) -> None:
    from harness.errors import ComputeError

    fake, backend = env
    fake.compute_state = "Failed"
    with pytest.raises(ComputeError, match=r"provisioning state Failed.*being deleted"):
        backend.ensure_compute(card, "gpu", None, TAGS)
    assert fake.calls("compute", "DELETE")


def test_existing_failed_cluster_is_refused_and_left_alone(env: Any, card: Any) -> None:
    from harness.errors import ComputeError

    fake, backend = env
    fake.add_compute("gpu", "Standard_NC24ads_A100_v4", state="Failed")
    with pytest.raises(ComputeError, match="gpu is in provisioning state Failed"):
        backend.ensure_compute(card, "gpu", None, TAGS)
    assert not fake.calls("compute", "DELETE")


@pytest.mark.parametrize("existing", [False, True])
def test_size_outside_the_allow_list_is_refused(env: Any, card: Any, existing: bool) -> None:
    from harness.errors import ComputeError

    fake, backend = env
    if existing:
        fake.add_compute("gpu", "Standard_ND40rs_v2")
    with pytest.raises(ComputeError, match="Standard_ND40rs_v2 is not allowed"):
        backend.ensure_compute(card, "gpu", "Standard_ND40rs_v2", TAGS)
    assert not fake.calls("compute", "PUT")


def test_size_missing_from_the_region_is_refused_and_cleaned_up(env: Any, card: Any) -> None:
    from harness.errors import ComputeError

    fake, backend = env
    fake.state.vm_sizes = [("Standard_DS3_v2", 0)]
    with pytest.raises(ComputeError, match=r"not available.*Standard_DS3_v2"):
        backend.ensure_compute(card, "gpu", None, TAGS)
    assert fake.calls("compute", "DELETE")


def test_creation_past_the_deadline_is_reported_and_cleaned_up(card: Any) -> None:
    from harness.errors import ComputeError

    with fake_azure(azure_config(compute_timeout_s="0.05")) as (fake, backend):
        fake.hold.add("compute")
        with pytest.raises(ComputeError, match=r"not created within 0s.*--compute-timeout"):
            backend.ensure_compute(card, "gpu", None, TAGS)
        assert fake.calls("compute", "DELETE")


def test_deleting_a_cluster_that_is_busy_fails_loudly(env: Any, card: Any) -> None:
    from harness.errors import CleanupError

    fake, backend = env
    compute = backend.ensure_compute(card, "gpu", None, TAGS)
    fake.delete_fails = {"compute"}
    with pytest.raises(CleanupError, match=r"gpu could not be deleted.*a job is running"):
        backend.delete_compute(compute.name, 5)
    assert fake.calls("compute", "DELETE")
