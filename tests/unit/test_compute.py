"""SKU allow-lists, retired sizes, the region's offer, GPU counts and default sizes."""

from __future__ import annotations

import json
from datetime import date

import pytest

from harness import compute
from harness.errors import ComputeError
from harness.model_card import ModelCard, model_card
from tests.support import DATA

SIZES = [("Standard_NC24ads_A100_v4", 1), ("Standard_ND96asr_v4", 8), ("Standard_D4s_v3", 0)]


@pytest.fixture(scope="module")
def phi3() -> ModelCard:
    data = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())
    return model_card(data["name"], "15", "id", data["tags"])


@pytest.fixture()
def bare() -> ModelCard:
    """A model without any allow-list tag."""
    return model_card("Bare", "1", "id", {})


@pytest.mark.parametrize(
    "sku", ["Standard_NC24ads_A100_v4", "standard_nc24ads_a100_v4", "STANDARD_ND96ASR_V4"]
)
def test_finetune_allow_list_is_case_insensitive(phi3: ModelCard, sku: str) -> None:
    compute.check_finetune_sku(phi3, sku)


def test_notebook_default_sku_is_refused(phi3: ModelCard) -> None:
    with pytest.raises(ComputeError) as err:
        compute.check_finetune_sku(phi3, "Standard_ND40rs_v2")
    message = str(err.value)
    assert "Standard_ND40rs_v2" in message
    assert "Phi-3-mini-4k-instruct:15" in message
    assert "Standard_NC24ads_A100_v4, Standard_NC48ads_A100_v4" in message
    assert "--compute-sku" in message


def test_retired_sizes_are_refused_even_when_allowed() -> None:
    c = model_card("M", "1", "id", {"finetune_compute_allow_list": "['Standard_NC6', 'A']"})
    with pytest.raises(ComputeError) as err:
        compute.check_finetune_sku(c, "standard_nc6")
    message = str(err.value)
    assert "retired on 2023-09-06" in message and "nc-series-retirement" in message
    assert "allowed and usable: A" in message and "--compute-sku" in message


@pytest.mark.parametrize(
    "sku", ["Standard_NC6", "standard_nc12", "STANDARD_NC24", "Standard_NC24r"]
)
def test_k80_sizes_are_retired_with_or_without_an_allow_list(bare: ModelCard, sku: str) -> None:
    with pytest.raises(ComputeError, match="retired on 2023-09-06") as err:
        compute.check_finetune_sku(bare, sku)
    assert "--compute-sku with another size" in str(err.value)


def test_other_sizes_pass_without_allow_list(bare: ModelCard) -> None:
    compute.check_finetune_sku(bare, "Standard_NC24ads_A100_v4")
    compute.check_inference_instance(bare, "anything")


def test_empty_allow_list_refuses_everything() -> None:
    c = model_card("M", "1", "id", {"finetune_compute_allow_list": "[]"})
    with pytest.raises(ComputeError, match=r"allowed: \(none\)"):
        compute.check_finetune_sku(c, "Standard_NC24ads_A100_v4")
    with pytest.raises(ComputeError, match="--compute-sku"):
        compute.default_finetune_sku(c)


def test_inference_allow_list(phi3: ModelCard) -> None:
    compute.check_inference_instance(phi3, "standard_nc48ads_a100_v4")
    with pytest.raises(ComputeError) as err:
        compute.check_inference_instance(phi3, "Standard_DS3_v2")
    message = str(err.value)
    assert "Standard_DS3_v2" in message
    assert "Standard_NC6s_v3, Standard_NC12s_v3" in message
    assert "--instance-type" in message


def test_defaults_are_allowed_not_retired_and_offered(phi3: ModelCard) -> None:
    """Phi-3-mini's inference list starts with three NCv3 sizes, retired on 2025-09-30; the
    next in list order, Standard_ND40rs_v2, has eight GPUs: the default is the one-GPU A100."""
    assert compute.default_finetune_sku(phi3) == "Standard_NC24ads_A100_v4"
    assert compute.default_instance_type(phi3) == "Standard_NC24ads_A100_v4"
    assert compute.default_instance_type(phi3, today=date(2025, 9, 29)) == "Standard_NC6s_v3"
    region = ["Standard_NC48ads_A100_v4", "Standard_NC6s_v3", "Standard_ND96asr_v4"]
    assert compute.choose_finetune_sku(phi3, None, region) == "Standard_NC48ads_A100_v4"
    assert compute.choose_instance_type(phi3, None, region) == "Standard_NC48ads_A100_v4"
    assert compute.choose_finetune_sku(phi3, "standard_nd96asr_v4", region) == (
        "standard_nd96asr_v4"
    )
    with pytest.raises(ComputeError):
        compute.choose_finetune_sku(phi3, "Standard_ND40rs_v2")
    with pytest.raises(ComputeError):
        compute.choose_instance_type(phi3, "Standard_D2_v2")


def test_an_explicit_size_the_region_does_not_offer_is_refused(phi3: ModelCard) -> None:
    region = ["Standard_NC48ads_A100_v4"]
    with pytest.raises(ComputeError) as err:
        compute.choose_finetune_sku(phi3, "Standard_NC24ads_A100_v4", region)
    message = str(err.value)
    assert "is not offered in the workspace's region" in message
    assert "allowed and usable: Standard_NC48ads_A100_v4" in message


def test_an_explicit_retired_instance_type_is_refused(phi3: ModelCard) -> None:
    with pytest.raises(
        ComputeError,
        match=r"Standard_NC6s_v3 cannot be used for deploying .*"
        r"retired on 2025-09-30.*ncv3-retirement",
    ):
        compute.choose_instance_type(phi3, "Standard_NC6s_v3")


def test_no_usable_default_says_why_for_each_size(phi3: ModelCard) -> None:
    with pytest.raises(ComputeError) as err:
        compute.default_instance_type(phi3, ["Standard_NC6s_v3", "Standard_DS3_v2"])
    message = str(err.value)
    assert "Standard_NC6s_v3 was retired on 2025-09-30" in message
    assert "Standard_NC24ads_A100_v4 is not offered in the workspace's region" in message
    assert "--instance-type" in message


def test_one_table_of_retired_sizes() -> None:
    names = {size.name for size in compute.RETIRED_SIZES}
    assert {
        "Standard_NC6s_v3",
        "Standard_NC12s_v3",
        "Standard_NC24s_v3",
        "Standard_NC24rs_v3",
    } <= names
    assert all(
        size.source.startswith("https://learn.microsoft.com/") for size in compute.RETIRED_SIZES
    )
    assert compute.retirement("standard_nc24rs_v3", today=date(2025, 9, 30)) is not None
    assert compute.retirement("Standard_NC24rs_v3", today=date(2025, 9, 29)) is None
    assert compute.retirement("Standard_NC24ads_A100_v4") is None


def test_gpus_for_sku() -> None:
    assert compute.gpus_for_sku("standard_nd96asr_v4", SIZES) == 8
    assert compute.gpus_for_sku("Standard_D4s_v3", iter(SIZES)) == 0  # returned, not judged


def test_missing_sku_lists_available() -> None:
    with pytest.raises(ComputeError) as err:
        compute.gpus_for_sku("Standard_ND40rs_v2", SIZES)
    message = str(err.value)
    assert "Standard_ND40rs_v2" in message
    assert "Standard_D4s_v3, Standard_NC24ads_A100_v4, Standard_ND96asr_v4" in message


def test_the_default_has_the_fewest_gpus_ties_broken_by_list_order(phi3: ModelCard) -> None:
    region = ["Standard_ND40rs_v2", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4"]
    choice = compute.choose_inference(phi3, None, region)
    assert choice.name == "Standard_NC48ads_A100_v4"
    assert "fewest GPUs (2 GPU; ties: list order)" in choice.reason
    # the region's own GPU counts win over the documented ones; a tie keeps list order
    counts = {"Standard_ND40rs_v2": 1, "Standard_NC48ads_A100_v4": 1}
    assert compute.choose_instance_type(phi3, None, region, gpus=counts) == "Standard_ND40rs_v2"
    unknown = compute.choose_finetune(phi3, None, ["Standard_ND96asr_v4"])
    assert unknown.name == "Standard_ND96asr_v4" and "8 GPU" in unknown.reason


def test_a_size_of_unknown_gpu_count_goes_last() -> None:
    card = model_card(
        "M",
        "1",
        "id",
        {
            "finetune_compute_allow_list": "['Standard_Unknown_v9', 'Standard_NC48ads_A100_v4']",
            "inference_compute_allow_list": "['Standard_Unknown_v9']",
        },
    )
    assert compute.default_finetune_sku(card) == "Standard_NC48ads_A100_v4"
    choice = compute.choose_inference(card, None)
    assert choice.name == "Standard_Unknown_v9" and "GPU count unknown" in choice.reason


def test_no_allow_lists_stop_unless_both_sizes_are_chosen_explicitly() -> None:
    bare = model_card("Bare", "3", "azureml://registries/azureml/models/Bare/versions/3", {})
    with pytest.raises(ComputeError) as stop:
        compute.explicit_sizes(bare, "Standard_NC24ads_A100_v4", None)
    message = str(stop.value)
    assert message.startswith("the registry returned no allow-lists for Bare:3")
    assert "tag inference_compute_allow_list" in message and "finetune-recommended-sku" in message
    assert "stops before creating anything: pass --compute-sku and --instance-type" in message
    with pytest.raises(ComputeError, match="returned no fine-tune allow-list for Bare:3"):
        compute.default_finetune_sku(bare)
    size = "Standard_NC24ads_A100_v4"
    assert compute.explicit_sizes(bare, size, size) == compute.ALLOW_LISTS_UNKNOWN
    assert "allow-lists unknown" in compute.choose_finetune(bare, size).reason


def test_one_missing_list_needs_only_its_own_option() -> None:
    half = model_card(
        "Half", "1", "id", {"finetune_compute_allow_list": "['Standard_NC24ads_A100_v4']"}
    )
    with pytest.raises(ComputeError, match=r"no inference allow-list.*pass --instance-type"):
        compute.explicit_sizes(half, None, None)
    note = compute.explicit_sizes(half, None, "Standard_NC24ads_A100_v4")
    assert note == "inference allow-list unknown: Standard_NC24ads_A100_v4 chosen explicitly"


def test_both_lists_answered_need_no_explicit_size(phi3: ModelCard) -> None:
    assert compute.explicit_sizes(phi3, None, None) is None
