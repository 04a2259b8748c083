"""The fine-tune cluster on Azure: reuse, creation (quota fails asynchronously, then the
LowPriority fallback), sizes that must be allowed, not retired and offered in the region, a name
taken elsewhere in the region, and refusals before anything is created."""

from __future__ import annotations

import pytest

from harness.model_card import ModelCard, model_card
from tests.support.azure_fake import AzureRig, azure_config, fake_azure

TAGS = {
    "harness-run-id": "hfake0001",
    "harness-created": "2026-01-01T00:00:00+00:00",
    "harness-expires": "2026-01-01T06:00:00+00:00",
}


@pytest.fixture()
def card(azure: AzureRig) -> ModelCard:
    """Phi-3-mini 15 as the registry returns it (system metadata as JSON text)."""
    return azure.backend.get_foundation_model("Phi-3-mini-4k-instruct", "15")


def _tiers(rig: AzureRig) -> list[str]:
    return [
        c.body["properties"]["properties"]["vmPriority"] for c in rig.fake.calls("compute", "PUT")
    ]


def test_existing_cluster_is_reused_and_never_deleted(azure: AzureRig, card: ModelCard) -> None:
    from harness.backends.base import Compute

    azure.fake.workspace.add_compute("gpu", "standard_nc48ads_a100_v4")  # case differs
    compute = azure.backend.ensure_compute(card, "gpu", None, TAGS)
    assert compute == Compute("gpu", "standard_nc48ads_a100_v4", 2, False, "Succeeded")
    assert not azure.fake.calls("compute", "PUT") and not azure.fake.calls("compute", "DELETE")


def test_the_default_size_is_the_first_allowed_one_the_region_offers(
    azure: AzureRig, card: ModelCard
) -> None:
    azure.fake.workspace.sizes = [
        s for s in azure.fake.workspace.sizes if s[0] != "Standard_NC24ads_A100_v4"
    ]
    compute = azure.backend.ensure_compute(card, "gpu", None, TAGS)
    (body,) = [c.body for c in azure.fake.calls("compute", "PUT")]
    assert body["properties"]["properties"]["vmSize"] == "Standard_NC48ads_A100_v4"
    assert compute.gpus_per_node == 2 and len(azure.fake.calls("vmsizes")) == 1


def test_quota_fails_the_dedicated_creation_later_then_low_priority_is_tried(
    azure: AzureRig, card: ModelCard
) -> None:
    """ARM accepts the PUT (201) and the operation ends Failed on quota: the failed cluster
    is deleted so that the LowPriority attempt can take the name."""
    azure.fake.workspace.quota_tiers = {"Dedicated"}
    compute = azure.backend.ensure_compute(card, "gpu", "Standard_NC96ads_A100_v4", TAGS)
    assert _tiers(azure) == ["Dedicated", "LowPriority"]
    assert len(azure.fake.calls("compute", "DELETE")) == 1  # the Failed Dedicated cluster
    assert compute.created_by_harness and compute.gpus_per_node == 4


def test_quota_in_every_tier_says_quota_in_the_services_words(
    azure: AzureRig, card: ModelCard
) -> None:
    from harness.errors import ComputeError

    azure.fake.workspace.quota_tiers = {"Dedicated", "LowPriority"}
    with pytest.raises(ComputeError) as failure:
        azure.backend.ensure_compute(card, "gpu", None, TAGS)
    message = str(failure.value)
    assert "quota" in message and "Standard_NC24ads_A100_v4" in message
    assert "cannot accomodate for at least 1 requested managed compute node" in message
    assert "--compute-sku" in message and "quota increase" in message
    assert _tiers(azure) == ["Dedicated", "LowPriority"]
    assert "gpu" not in azure.fake.workspace.computes


def test_a_name_taken_elsewhere_in_the_region_has_its_own_message(
    azure: AzureRig, card: ModelCard
) -> None:
    from harness.errors import ComputeError

    azure.fake.workspace.taken_in_region = {"gpu"}
    with pytest.raises(
        ComputeError,
        match=r"compute name gpu is taken by a compute elsewhere in "
        r"the workspace's region.*--compute-name",
    ):
        azure.backend.ensure_compute(card, "gpu", None, TAGS)
    assert _tiers(azure) == ["Dedicated"], "another tier cannot help"


def test_created_cluster_that_failed_provisioning_is_deleted_again(
    azure: AzureRig, card: ModelCard
) -> None:
    from harness.errors import ComputeError

    azure.fake.workspace.created_state = "Failed"
    with pytest.raises(ComputeError, match=r"provisioning state Failed.*being deleted"):
        azure.backend.ensure_compute(card, "gpu", None, TAGS)
    assert azure.fake.calls("compute", "DELETE")


def test_existing_failed_cluster_is_refused_and_left_alone(
    azure: AzureRig, card: ModelCard
) -> None:
    from harness.errors import ComputeError

    azure.fake.workspace.add_compute("gpu", "Standard_NC24ads_A100_v4", state="Failed")
    with pytest.raises(ComputeError, match="gpu is in provisioning state Failed"):
        azure.backend.ensure_compute(card, "gpu", None, TAGS)
    assert not azure.fake.calls("compute", "DELETE")


@pytest.mark.parametrize("existing", [False, True])
def test_size_outside_the_allow_list_is_refused(
    azure: AzureRig, card: ModelCard, existing: bool
) -> None:
    from harness.errors import ComputeError

    if existing:
        azure.fake.workspace.add_compute("gpu", "Standard_ND40rs_v2")
    with pytest.raises(ComputeError, match="Standard_ND40rs_v2 is not allowed"):
        azure.backend.ensure_compute(card, "gpu", "Standard_ND40rs_v2", TAGS)
    assert not azure.fake.calls("compute", "PUT")


def test_a_retired_size_is_refused_before_anything_is_created(azure: AzureRig) -> None:
    from harness.errors import ComputeError

    allows_ncv3 = model_card(
        "M",
        "1",
        "id",
        {"finetune_compute_allow_list": "['Standard_NC6s_v3', 'Standard_NC24ads_A100_v4']"},
    )
    with pytest.raises(
        ComputeError,
        match=r"Standard_NC6s_v3 .*retired on 2025-09-30.*"
        r"allowed and usable: Standard_NC24ads_A100_v4",
    ):
        azure.backend.ensure_compute(allows_ncv3, "gpu", "Standard_NC6s_v3", TAGS)
    assert not azure.fake.calls("compute", "PUT")


def test_a_size_the_region_does_not_offer_is_refused_before_creation(
    azure: AzureRig, card: ModelCard
) -> None:
    from harness.errors import ComputeError

    azure.fake.workspace.sizes = [("Standard_DS3_v2", "standardDSv2Family", 4, 0)]
    with pytest.raises(
        ComputeError,
        match=r"no size allowed .* can be used.*"
        r"Standard_NC24ads_A100_v4 is not offered",
    ):
        azure.backend.ensure_compute(card, "gpu", None, TAGS)
    assert not azure.fake.calls("compute", "PUT")


def test_creation_past_the_deadline_is_reported_and_cleaned_up(card: ModelCard) -> None:
    from harness.errors import ComputeError

    with fake_azure(azure_config(compute_timeout_s="0.05")) as rig:
        rig.fake.ops.hold.add("compute")
        with pytest.raises(ComputeError, match=r"not created within 0s.*--compute-timeout"):
            rig.backend.ensure_compute(card, "gpu", None, TAGS)
        assert rig.fake.calls("compute", "DELETE")


def test_deleting_a_cluster_that_is_busy_fails_loudly(azure: AzureRig, card: ModelCard) -> None:
    from harness.errors import CleanupError

    compute = azure.backend.ensure_compute(card, "gpu", None, TAGS)
    azure.fake.workspace.delete_fails = True
    with pytest.raises(CleanupError, match=r"gpu could not be deleted.*a job is running"):
        azure.backend.delete_compute(compute.name, 5)
    assert azure.fake.calls("compute", "DELETE")


def test_the_regions_sizes_come_with_gpus_vcpus_and_family(azure: AzureRig) -> None:
    sizes = {s.name: s for s in azure.backend.list_vm_sizes()}
    a100 = sizes["Standard_NC24ads_A100_v4"]
    assert (a100.gpus, a100.vcpus, a100.family) == (1, 24, "standardNCADSA100v4Family")
