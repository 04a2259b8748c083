"""Registry metadata (tags in their string forms, system metadata as objects or JSON text)
-> ModelCard, with where each fact came from; malformed values refused."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError, TagError
from harness.model_card import Deprecation, ModelCard, model_card, parse_tag, retirement_notice
from tests.support import DATA


@pytest.fixture(scope="module")
def registry_tags() -> dict[str, str]:
    data: dict[str, Any] = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())
    return data["tags"]  # type: ignore[no-any-return]


def card(tags: dict[str, Any]) -> ModelCard:
    return model_card("M", "15", "azureml://registries/azureml/models/M/versions/15", tags)


def test_real_registry_tags(registry_tags: dict[str, str]) -> None:
    c = model_card("Phi-3-mini-4k-instruct", "15", "id-1", registry_tags)
    assert c.finetune_allow_list == (
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_ND96asr_v4",
        "Standard_ND96amsr_A100_v4",
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
        "Phi-3-mini-4k-instruct",
        "15",
        "id-1",
        "Phi-3-mini-4k-instruct:15",
    )


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


# ---- system metadata: where the registry keeps allow-lists, tasks and dates now -------------

SUPPORTED = {
    "finetuneComputes": ["Standard_NC24ads_A100_v4", "Standard_ND96asr_v4"],
    "inferenceComputes": ["Standard_NC6s_v3", "Standard_NC24ads_A100_v4"],
    "evaluationComputes": ["Standard_NC24ads_A100_v4"],
}
METADATA = {
    "supportedComputes": SUPPORTED,
    "tasks": {"fineTuningTasks": ["text-generation", "chat-completion"]},
    "deprecation": {
        "finetuneRetirementDate": "2025-08-30T00:00:00.000000Z",
        "inferenceRetirementDate": "2025-09-30T00:00:00.000000Z",
    },
    "languages": ["en"],
}


def as_published_in_place(metadata: dict[str, Any]) -> dict[str, str]:
    """azureml-assets' stringify_dictionary: dicts as JSON text, the rest str()."""
    return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in metadata.items()}


def system_card(
    metadata: dict[str, Any], tags: dict[str, Any] | None = None, archived: bool = False
) -> ModelCard:
    return model_card("M", "15", "id", tags or {}, metadata, archived)


@pytest.mark.parametrize("form", [dict, as_published_in_place], ids=["object", "json-text"])
def test_allow_lists_task_and_dates_from_system_metadata(form: Any) -> None:
    c = system_card(form(METADATA), archived=True)
    assert c.finetune_allow_list == ("Standard_NC24ads_A100_v4", "Standard_ND96asr_v4")
    assert c.inference_allow_list == ("Standard_NC6s_v3", "Standard_NC24ads_A100_v4")
    assert c.evaluation_allow_list == ("Standard_NC24ads_A100_v4",)
    assert c.task == "chat-completion"  # listed second, still the one the harness needs
    assert (c.finetune_allow_list_source, c.inference_allow_list_source, c.task_source) == (
        "system_metadata",
        "system_metadata",
        "system_metadata",
    )
    assert c.deprecation.archived and c.deprecation.source == "system_metadata"
    assert c.deprecation.finetune_retirement == date(2025, 8, 30)
    assert c.deprecation.inference_retirement == date(2025, 9, 30)
    assert c.deprecation.finetune_deprecation is None


def test_system_metadata_wins_over_the_old_tags(registry_tags: dict[str, str]) -> None:
    c = system_card(METADATA, tags=registry_tags)
    assert c.finetune_allow_list == tuple(SUPPORTED["finetuneComputes"])
    assert c.finetune_allow_list_source == "system_metadata"
    assert c.model_specific_defaults["deepspeed_stage"] == 2  # defaults stay in the tags


def test_the_tag_form_still_works_and_says_so(registry_tags: dict[str, str]) -> None:
    tags = {**registry_tags, "FinetuneRetirementDate": "2025-06-30"}
    c = system_card({}, tags=tags)
    assert c.finetune_allow_list_source == c.inference_allow_list_source == "tags"
    assert c.task_source == "tags"
    assert c.deprecation.finetune_retirement == date(2025, 6, 30)
    assert c.deprecation.source == "tags" and not c.deprecation.archived


def test_no_lists_anywhere_means_no_source() -> None:
    c = system_card({"languages": "['en']"})
    assert c.finetune_allow_list is None and c.finetune_allow_list_source is None
    assert c.deprecation == Deprecation()
    assert "no deprecation dates" in c.deprecation.describe()


@pytest.mark.parametrize(
    "metadata, fragment",
    [
        ({"supportedComputes": '{"finetuneComputes": ['}, "'supportedComputes'"),
        ({"supportedComputes": "['a']"}, "must be an object"),
        (
            {"supportedComputes": {"finetuneComputes": "{'a': 1}"}},
            "'supportedComputes.finetuneComputes' must be a list",
        ),
        ({"tasks": {"fineTuningTasks": [1]}}, "'tasks.fineTuningTasks'"),
        ({"deprecation": {"finetuneRetirementDate": "soon"}}, "is not a date"),
    ],
)
def test_malformed_system_metadata_names_the_field(metadata: dict[str, Any], fragment: str) -> None:
    with pytest.raises(TagError, match=re.escape(fragment)):
        system_card(metadata)


def test_system_metadata_round_trips_through_dict() -> None:
    c = system_card(
        as_published_in_place(METADATA), tags={"model_specific_defaults": "{}"}, archived=True
    )
    again = ModelCard.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert again.finetune_allow_list_source == "system_metadata" and again.deprecation.archived


def test_retirement_is_a_warning_then_an_error_when_strict() -> None:
    c = system_card(METADATA, archived=True)
    assert retirement_notice(c, strict=False, today=date(2025, 8, 30)) is None
    notice = retirement_notice(c, strict=False, today=date(2025, 8, 31))
    assert notice and "passed its fine-tune retirement date 2025-08-30" in notice
    assert "archived" in notice and "--model-version" in notice
    with pytest.raises(ConfigError, match="drop --strict-deprecation"):
        retirement_notice(c, strict=True, today=date(2025, 8, 31))
    assert retirement_notice(system_card({}), strict=True) is None


def test_every_documented_place_answers_and_is_named() -> None:
    """In order: supportedComputes (either wire key), the tags, SKU.*RecommendedSkus, the
    asset's *-recommended-sku properties (comma-separated, azureml-assets validate_assets.py)."""
    from harness.model_card import model_card

    sized = {"finetuneRecommendedSkus": ["Standard_NC24ads_A100_v4"]}
    card = model_card(
        "M",
        "2",
        "id",
        {"inference_compute_allow_list": "['Standard_NC48ads_A100_v4']"},
        {"SKU": json.dumps(sized)},
        properties={"inference-recommended-sku": "Standard_NC96ads_A100_v4"},
        metadata_key="systemMetadata",
    )
    assert card.finetune_allow_list == ("Standard_NC24ads_A100_v4",)
    assert card.finetune_allow_list_source == "systemMetadata.SKU"
    assert card.inference_allow_list_source == "tags", "the tag comes before properties"
    only_properties = model_card(
        "M",
        "2",
        "id",
        {},
        properties={
            "finetune-recommended-sku": "Standard_NC24ads_A100_v4, Standard_NC48ads_A100_v4",
            "inference-recommended-sku": "Standard_NC24ads_A100_v4",
        },
    )
    assert only_properties.finetune_allow_list == (
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
    )
    assert only_properties.sources()["finetune_compute_allow_list"] == "properties"
    assert only_properties.missing_allow_lists() == ()


def test_nothing_answered_says_where_it_looked() -> None:
    from harness.model_card import allow_list_places, model_card

    card = model_card("M", "2", "id", {"model_specific_defaults": "{}"})
    assert card.missing_allow_lists() == (
        "finetune_compute_allow_list",
        "inference_compute_allow_list",
    )
    found = card.allow_lists_found()
    for place in allow_list_places("inference_compute_allow_list"):
        assert place in found
    assert card.report_fields()["allow_lists"] == found


def test_the_card_of_a_recorded_resource_takes_its_version_from_the_id() -> None:
    """The recorded registry GET: ``name`` is the model's name, ``type`` ``models``."""
    from harness.model_card import card_from_resource, version_from_id

    resource = {
        "id": "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/versions/4",
        "name": "Meta-Llama-3.1-8B-Instruct",
        "type": "models",
        "properties": {"tags": {}, "properties": {}, "isArchived": True},
    }
    card = card_from_resource("Meta-Llama-3.1-8B-Instruct", resource)
    assert card.version == "4" and card.deprecation.archived
    assert card.finetune_allow_list is None
    arm = "/subscriptions/s/resourceGroups/r/providers/x/workspaces/w/models/m/versions/17"
    assert version_from_id(arm) == "17" and version_from_id("no-version-here") == ""
    assert (
        card_from_resource(
            "M",
            {
                **resource,
                "properties": {
                    "systemMetadata": {
                        "supportedComputes": {"finetuneComputes": ["A"], "inferenceComputes": ["B"]}
                    }
                },
            },
        ).finetune_allow_list_source
        == "systemMetadata"
    )


def test_the_card_crosses_processes_with_its_properties_and_wire_key() -> None:
    from harness.model_card import ModelCard, model_card

    card = model_card(
        "M",
        "1",
        "id",
        {},
        {"supportedComputes": {"finetuneComputes": ["A"], "inferenceComputes": ["B"]}},
        properties={"x": "y"},
        metadata_key="systemMetadata",
    )
    again = ModelCard.from_dict(card.to_dict())
    assert again == card and again.finetune_allow_list_source == "systemMetadata"
