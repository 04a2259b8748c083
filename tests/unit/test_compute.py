"""SKU allow/deny lists, GPU counts and default sizes, against the real Phi-3-mini tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import compute
from harness.errors import ComputeError
from harness.tags import ModelCard, model_card

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
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


def test_allow_list_wins_over_k80_deny_list() -> None:
    c = model_card("M", "1", "id", {"finetune_compute_allow_list": "['Standard_NC6']"})
    compute.check_finetune_sku(c, "standard_nc6")


@pytest.mark.parametrize(
    "sku", ["Standard_NC6", "standard_nc12", "STANDARD_NC24", "Standard_NC24r"]
)
def test_k80_denied_without_allow_list(bare: ModelCard, sku: str) -> None:
    with pytest.raises(ComputeError, match="K80") as err:
        compute.check_finetune_sku(bare, sku)
    assert "--compute-sku" in str(err.value)


def test_other_sizes_pass_without_allow_list(bare: ModelCard) -> None:
    compute.check_finetune_sku(bare, "Standard_NC6s_v3")
    compute.check_inference_instance(bare, "anything")


def test_empty_allow_list_refuses_everything() -> None:
    c = model_card("M", "1", "id", {"finetune_compute_allow_list": "[]"})
    with pytest.raises(ComputeError, match=r"allowed: \(none\)"):
        compute.check_finetune_sku(c, "Standard_NC24ads_A100_v4")
    with pytest.raises(ComputeError, match="--compute-sku"):
        compute.default_finetune_sku(c)


def test_inference_allow_list(phi3: ModelCard) -> None:
    compute.check_inference_instance(phi3, "standard_nc6s_v3")
    with pytest.raises(ComputeError) as err:
        compute.check_inference_instance(phi3, "Standard_DS3_v2")
    message = str(err.value)
    assert "Standard_DS3_v2" in message
    assert "Standard_NC6s_v3, Standard_NC12s_v3" in message
    assert "--instance-type" in message


def test_defaults_come_from_allow_lists(phi3: ModelCard) -> None:
    assert compute.default_finetune_sku(phi3) == "Standard_NC24ads_A100_v4"
    assert compute.default_instance_type(phi3) == "Standard_NC6s_v3"
    assert compute.choose_finetune_sku(phi3, None) == "Standard_NC24ads_A100_v4"
    assert compute.choose_finetune_sku(phi3, "standard_nd96asr_v4") == "standard_nd96asr_v4"
    assert compute.choose_instance_type(phi3, None) == "Standard_NC6s_v3"
    with pytest.raises(ComputeError):
        compute.choose_finetune_sku(phi3, "Standard_ND40rs_v2")
    with pytest.raises(ComputeError):
        compute.choose_instance_type(phi3, "Standard_D2_v2")


def test_no_allow_list_and_no_choice_asks_for_option(bare: ModelCard) -> None:
    with pytest.raises(ComputeError, match="--compute-sku"):
        compute.choose_finetune_sku(bare, None)
    with pytest.raises(ComputeError, match="--instance-type"):
        compute.default_instance_type(bare)
    assert compute.choose_finetune_sku(bare, "Standard_NC6s_v3") == "Standard_NC6s_v3"
    assert compute.choose_instance_type(bare, "Standard_NC6s_v3") == "Standard_NC6s_v3"


def test_gpus_for_sku() -> None:
    assert compute.gpus_for_sku("standard_nd96asr_v4", SIZES) == 8
    assert compute.gpus_for_sku("Standard_D4s_v3", iter(SIZES)) == 0  # returned, not judged


def test_missing_sku_lists_available() -> None:
    with pytest.raises(ComputeError) as err:
        compute.gpus_for_sku("Standard_ND40rs_v2", SIZES)
    message = str(err.value)
    assert "Standard_ND40rs_v2" in message
    assert "Standard_D4s_v3, Standard_NC24ads_A100_v4, Standard_ND96asr_v4" in message


def test_k80_deny_list() -> None:
    assert frozenset({"standard_nc6", "standard_nc12", "standard_nc24", "standard_nc24r"}) == (
        compute.K80_DENY_LIST
    )
