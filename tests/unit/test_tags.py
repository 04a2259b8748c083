"""Model tags in the registry's string forms -> ModelCard, and malformed tags refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import TagError
from harness.tags import ModelCard, model_card, parse_tag

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def registry_tags() -> dict[str, str]:
    data: dict[str, Any] = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())
    return data["tags"]  # type: ignore[no-any-return]


def card(tags: dict[str, Any]) -> ModelCard:
    return model_card("M", "15", "azureml://registries/azureml/models/M/versions/15", tags)


def test_real_registry_tags(registry_tags: dict[str, str]) -> None:
    c = model_card("Phi-3-mini-4k-instruct", "15", "id-1", registry_tags)
    assert c.finetune_allow_list == (
        "Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
        "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4",
    )
    assert c.inference_allow_list is not None
    assert c.inference_allow_list[0] == "Standard_NC6s_v3"
    assert len(c.inference_allow_list) == 9
    assert c.evaluation_allow_list is None  # absent for this model
    assert c.task == "chat-completion"
    assert c.model_specific_defaults["deepspeed_stage"] == 2
    assert c.model_specific_defaults["precision"] == 16
    assert c.model_specific_defaults["learning_rate_min"] == 5e-07
    assert c.model_specific_defaults["apply_lora"] == "true"
    assert c.tags == registry_tags  # raw strings kept as the registry stores them
    assert (c.name, c.version, c.id, c.label) == (
        "Phi-3-mini-4k-instruct", "15", "id-1", "Phi-3-mini-4k-instruct:15")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("['a', 'b']", ["a", "b"]),  # Python repr
        ('["a", "b"]', ["a", "b"]),  # JSON
        ('{"x": 1, "y": "z"}', {"x": 1, "y": "z"}),
        ("{'x': True, 'y': None}", {"x": True, "y": None}),  # Python literal dict
        ('{"x": true, "y": null}', {"x": True, "y": None}),  # JSON-only literals
        ("  ['padded']  ", ["padded"]),
    ],
)
def test_parse_tag_both_forms(text: str, expected: object) -> None:
    assert parse_tag("t", text) == expected


def test_parse_tag_passes_parsed_values_through() -> None:
    value = ["a"]
    assert parse_tag("t", value) is value
    assert parse_tag("t", {"k": 1}) == {"k": 1}


@pytest.mark.parametrize(
    "text",
    ["['a', 'b'", "{'x': 1", "__import__('os').system('echo pwned')", "not a list", ""],
)
def test_malformed_tag_names_tag_and_text(text: str) -> None:
    with pytest.raises(TagError) as err:
        parse_tag("finetune_compute_allow_list", text)
    assert "finetune_compute_allow_list" in str(err.value)
    assert repr(text) in str(err.value)


def test_never_evaluates_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(TagError):
        parse_tag("t", f"open({str(marker)!r}, 'w')")
    assert not marker.exists()


def test_huge_bad_tag_is_shown_truncated() -> None:
    with pytest.raises(TagError) as err:
        parse_tag("t", "[" + "x" * 10_000)
    assert "10001 characters" in str(err.value)
    assert len(str(err.value)) < 1000


def test_json_form_of_every_tag(registry_tags: dict[str, str]) -> None:
    json_tags = {
        "finetune_compute_allow_list": json.dumps(["Standard_NC24ads_A100_v4"]),
        "inference_compute_allow_list": '["Standard_NC6s_v3"]',
        "evaluation_compute_allow_list": "['Standard_NC6s_v3']",
        "model_specific_defaults": registry_tags["model_specific_defaults"],
    }
    c = card(json_tags)
    assert c.finetune_allow_list == ("Standard_NC24ads_A100_v4",)
    assert c.evaluation_allow_list == ("Standard_NC6s_v3",)
    assert c.task is None


def test_already_parsed_tags() -> None:
    c = card({"finetune_compute_allow_list": ["A"], "model_specific_defaults": {"k": 1}})
    assert c.finetune_allow_list == ("A",)
    assert c.model_specific_defaults == {"k": 1}
    assert c.tags["finetune_compute_allow_list"] == '["A"]'  # stored as a string again


def test_missing_tags_mean_none() -> None:
    c = card({})
    assert c.finetune_allow_list is None
    assert c.inference_allow_list is None
    assert c.model_specific_defaults == {}
    assert c.task is None


@pytest.mark.parametrize(
    "tag, value",
    [
        ("finetune_compute_allow_list", "'Standard_NC24ads_A100_v4'"),  # a str, not a list
        ("inference_compute_allow_list", "[1, 2]"),
        ("evaluation_compute_allow_list", "{'a': 1}"),
        ("model_specific_defaults", "['a']"),
        ("model_specific_defaults", "{1: 'a'}"),
        ("finetune_compute_allow_list", ["A", 3]),
        ("task", ["chat"]),
    ],
)
def test_wrong_type_is_a_tag_error(tag: str, value: object) -> None:
    with pytest.raises(TagError) as err:
        card({tag: value})
    assert repr(tag) in str(err.value)


def test_malformed_registry_tag_in_card(registry_tags: dict[str, str]) -> None:
    broken = {**registry_tags, "model_specific_defaults": '{"apply_lora": "true",'}
    with pytest.raises(TagError, match="model_specific_defaults"):
        card(broken)


def test_round_trip_through_dict(registry_tags: dict[str, str]) -> None:
    c = model_card("Phi", "3", "id", registry_tags)
    again = ModelCard.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    parsed = card({"finetune_compute_allow_list": ["A"]})
    assert ModelCard.from_dict(parsed.to_dict()) == parsed
