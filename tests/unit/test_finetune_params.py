"""Parameter merge, fitting to the real chat_completion_pipeline inputs, and display names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import finetune_params
from harness.errors import ParameterError
from harness.finetune_params import (
    NOTEBOOK_DEFAULTS,
    display_name,
    fit_to_component,
    merge_parameters,
)
from harness.model_card import ModelCard, model_card
from tests.support import DATA

Inputs = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def phi3() -> ModelCard:
    data = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())
    return model_card(data["name"], "15", "id", data["tags"])


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return finetune_params.load_component_inputs(DATA / "chat_completion_pipeline.inputs.json")


def test_notebook_defaults() -> None:
    assert dict(NOTEBOOK_DEFAULTS) == {
        "num_train_epochs": 3,
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "learning_rate": 5e-6,
        "lr_scheduler_type": "cosine",
        "apply_lora": "true",
        "apply_deepspeed": "true",
        "deepspeed_stage": 2,
    }


def test_shipped_inputs_match_test_copy(inputs: Inputs) -> None:
    assert finetune_params.load_component_inputs() == inputs
    assert inputs["deepspeed_stage"]["enum"] == ["2", "3"]


def test_merge_order(phi3: ModelCard) -> None:
    merged = merge_parameters(phi3, {"num_train_epochs": "2", "seed": "7"})
    assert merged["num_train_epochs"] == "2"  # user override wins
    assert merged["precision"] == 16  # model default added
    assert merged["learning_rate_max"] == 5e-05
    assert merged["seed"] == "7"
    bare = model_card("B", "1", "id", {})
    assert merge_parameters(bare, {}) == dict(NOTEBOOK_DEFAULTS)


def test_real_tags_fit_the_real_component(phi3: ModelCard, inputs: Inputs) -> None:
    plan = fit_to_component(merge_parameters(phi3, {}), inputs)
    assert plan.dropped == {"learning_rate_min": 5e-07, "learning_rate_max": 5e-05}
    p = plan.parameters
    assert p["deepspeed_stage"] == "2"
    assert p["precision"] == "16"
    assert p["apply_lora"] == "true"
    assert p["num_train_epochs"] == 1 and type(p["num_train_epochs"]) is int
    assert p["learning_rate"] == 5e-06 and type(p["learning_rate"]) is float
    assert p["save_total_limit"] == 1
    assert p["lr_scheduler_type"] == "cosine"
    assert set(p) | set(plan.dropped) == set(merge_parameters(phi3, {}))


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("num_train_epochs", "4", 4),
        ("num_train_epochs", 4.0, 4),
        ("num_train_epochs", " 5 ", 5),
        ("max_steps", "-1", -1),
        ("max_steps", "1e3", 1000),
        ("learning_rate", "2e-5", 2e-5),
        ("learning_rate", 1, 1.0),
        ("adam_epsilon", "1e-8", 1e-8),
        ("precision", 16, "16"),
        ("deepspeed_stage", "3", "3"),
        ("apply_lora", False, "false"),
        ("apply_lora", True, "true"),
        ("shm_size_finetune", "16g", "16g"),
        ("huggingface_id", "microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct"),
    ],
)
def test_coercion(inputs: Inputs, name: str, value: object, expected: object) -> None:
    result = fit_to_component({name: value}, inputs).parameters[name]
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("num_train_epochs", "abc", "an integer"),
        ("num_train_epochs", "+-5", "an integer"),
        ("num_train_epochs", True, "an integer"),
        ("num_train_epochs", 1.5, "an integer"),
        ("num_train_epochs", "0", "at least 1"),
        ("per_device_train_batch_size", -2, "at least 1"),
        ("learning_rate", "fast", "a number"),
        ("learning_rate", "nan", "finite"),
        ("learning_rate", False, "a number"),
        ("learning_rate", [1], "a number"),
        ("deepspeed_stage", 4, "one of 2, 3"),
        ("apply_lora", "True", "one of true, false"),
        ("precision", "bf16", "one of 32, 16"),
        ("optim", {"a": 1}, "a string"),
    ],
)
def test_bad_values(inputs: Inputs, name: str, value: object, fragment: str) -> None:
    with pytest.raises(ParameterError) as err:
        fit_to_component({name: value}, inputs)
    message = str(err.value)
    assert name in message
    assert repr(value) in message
    assert fragment in message


@pytest.mark.parametrize(
    "name",
    [
        "train_file_path",
        "mlflow_model_path",
        "pytorch_model_path",
        "train_mltable_path",
        "deepspeed",
    ],
)
def test_asset_inputs_are_not_parameters(inputs: Inputs, name: str) -> None:
    with pytest.raises(ParameterError, match=f"{name} is a .* input that the harness wires"):
        fit_to_component({name: "somewhere"}, inputs)


def test_user_override_of_asset_input(phi3: ModelCard, inputs: Inputs) -> None:
    with pytest.raises(ParameterError, match="finetune_config_path"):
        fit_to_component(merge_parameters(phi3, {"finetune_config_path": "x.json"}), inputs)


def test_unknown_and_none_are_dropped_not_lost(inputs: Inputs) -> None:
    plan = fit_to_component({"bogus": "1", "seed": None, "seed2": 3}, inputs)
    assert plan.parameters == {}
    assert plan.dropped == {"bogus": "1", "seed": None, "seed2": 3}


def test_other_declared_types() -> None:
    spec: Inputs = {
        "flag": {"type": "boolean"},
        "ratio": {"type": "number", "max": 1},
        "odd": {"type": "weird"},
    }
    assert fit_to_component({"flag": "TRUE"}, spec).parameters == {"flag": True}
    assert fit_to_component({"flag": False}, spec).parameters == {"flag": False}
    with pytest.raises(ParameterError, match="true or false"):
        fit_to_component({"flag": "yes"}, spec)
    with pytest.raises(ParameterError, match="at most 1"):
        fit_to_component({"ratio": 2}, spec)
    with pytest.raises(ParameterError, match="'weird'"):
        fit_to_component({"odd": 1}, spec)


def test_load_component_inputs_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="cannot read"):
        finetune_params.load_component_inputs(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ParameterError, match="cannot read"):
        finetune_params.load_component_inputs(bad)
    bad.write_text('{"outputs": {}}')
    with pytest.raises(ParameterError, match="no 'inputs' mapping"):
        finetune_params.load_component_inputs(bad)


def test_display_name_notebook_defaults_only() -> None:
    name = display_name("Phi-3-mini-4k-instruct", dict(NOTEBOOK_DEFAULTS), 1)
    assert name == "Phi-3-mini-4k-instruct-ultrachat-bs1-cosine-ds2-lora-save_limit-1-seqlen-1"


def test_display_name_of_real_plan(phi3: ModelCard, inputs: Inputs) -> None:
    params = fit_to_component(merge_parameters(phi3, {}), inputs).parameters
    assert display_name(phi3.name, params, 4) == (
        "Phi-3-mini-4k-instruct-ultrachat-bs4-cosine-ds2-lora-save_limit1-seqlen-1"
    )


def test_display_name_every_part() -> None:
    params = {
        "per_device_train_batch_size": "2",
        "gradient_accumulation_steps": 4,
        "num_nodes_finetune": 2,
        "lr_scheduler_type": "linear",
        "apply_deepspeed": "false",
        "apply_lora": "false",
        "save_total_limit": 3,
        "max_seq_length": 2048,
    }
    assert display_name("m", params, 8) == (
        "m-ultrachat-bs128-linear-nods-nolora-save_limit3-seqlen2048"
    )
    assert display_name("m", {"apply_deepspeed": "true", "deepspeed_stage": "3"}, 1) == (
        "m-ultrachat-bs1-linear-ds3-nolora-save_limit-1-seqlen-1"
    )
    assert display_name("m", {"apply_deepspeed": "true"}, 1).split("-")[4] == "ds2"


@pytest.mark.parametrize("name", ["compute_finetune", "number_of_gpu_to_use_finetuning"])
def test_inputs_wired_from_the_compute_cannot_be_overridden(name: str) -> None:
    inputs = finetune_params.load_component_inputs()
    with pytest.raises(ParameterError, match=f"{name} is set by the harness"):
        fit_to_component({name: "1"}, inputs)


# --- the user's own overrides are strict; values the trainer rejects are refused -------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("lerning_rate", "learning_rate"),
        ("num_train_epoch", "num_train_epochs"),
        ("lora_rank", "lora_r"),
        ("Learning_Rate", "learning_rate"),
    ],
)
def test_a_misspelled_override_names_the_closest_input(
    phi3: ModelCard, inputs: Inputs, typo: str, meant: str
) -> None:
    with pytest.raises(ParameterError) as err:
        finetune_params.plan_parameters(phi3, {typo: "2"}, inputs)
    message = str(err.value)
    assert f"{typo}" in message and f"did you mean {meant}?" in message
    assert "--allow-dropped-params" in message


def test_an_override_like_no_input_lists_the_valid_ones(phi3: ModelCard, inputs: Inputs) -> None:
    with pytest.raises(ParameterError) as err:
        finetune_params.plan_parameters(phi3, {"zzz": "1", "seed": "3"}, inputs)
    message = str(err.value)
    assert "zzz" in message and "valid inputs:" in message and "lora_dropout" in message
    assert "train_file_path" not in message  # wired by the harness, never a parameter


def test_the_users_key_is_strict_even_when_the_model_sets_it(
    phi3: ModelCard, inputs: Inputs
) -> None:
    with pytest.raises(ParameterError, match="learning_rate_min"):
        finetune_params.plan_parameters(phi3, {"learning_rate_min": "1e-7"}, inputs)


def test_the_models_own_extra_keys_are_still_dropped_and_reported(
    phi3: ModelCard, inputs: Inputs
) -> None:
    plan = finetune_params.plan_parameters(phi3, {"seed": "3"}, inputs)
    assert plan.dropped == {"learning_rate_min": 5e-07, "learning_rate_max": 5e-05}
    assert plan.parameters["seed"] == 3


def test_drops_are_allowed_when_asked(phi3: ModelCard, inputs: Inputs) -> None:
    plan = finetune_params.plan_parameters(
        phi3, {"lerning_rate": "1e-5"}, inputs, allow_dropped=True
    )
    assert plan.dropped["lerning_rate"] == "1e-5"
    assert plan.parameters["learning_rate"] == 5e-06


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("lora_r", "0", "at least 1"),
        ("lora_alpha", "0", "at least 1"),
        ("learning_rate", "-1e-5", "above 0"),
        ("learning_rate", "0", "above 0"),
        ("per_device_train_batch_size", "0", "at least 1"),
        ("per_device_eval_batch_size", "0", "at least 1"),
        ("gradient_accumulation_steps", "0", "at least 1"),
        ("lora_dropout", "1", "below 1"),
        ("lora_dropout", "-0.1", "at least 0"),
        ("adam_beta1", "1.0", "below 1"),
        ("adam_beta2", "-0.5", "at least 0"),
        ("adam_epsilon", "-1e-8", "at least 0"),
        ("weight_decay", "-0.01", "at least 0"),
        ("max_grad_norm", "-1", "at least 0"),
        ("warmup_steps", "-1", "at least 0"),
        ("logging_steps", "0", "at least 1"),
        ("eval_steps", "0", "at least 1"),
        ("seed", "-1", "at least 0"),
        ("seed", str(2**32), f"at most {2**32 - 1}"),
        ("dataloader_num_workers", "-1", "at least 0"),
        ("num_train_epochs", "0", "at least 1"),
    ],
)
def test_values_the_trainer_rejects_are_refused_before_any_job(
    phi3: ModelCard, inputs: Inputs, name: str, value: str, fragment: str
) -> None:
    with pytest.raises(ParameterError) as err:
        finetune_params.plan_parameters(phi3, {name: value}, inputs)
    message = str(err.value)
    assert f"{name}={value!r}" in message and fragment in message
    assert "--finetune-param" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lora_dropout", "0"),
        ("lora_dropout", "0.5"),
        ("adam_beta2", "0.999"),
        ("learning_rate", "1e-9"),
        ("seed", "0"),
        ("warmup_steps", "0"),
        ("max_grad_norm", "0"),
        ("lora_r", "1"),
        ("seed", str(2**32 - 1)),
    ],
)
def test_values_at_the_edge_of_the_rules_are_accepted(
    phi3: ModelCard, inputs: Inputs, name: str, value: str
) -> None:
    assert name in finetune_params.plan_parameters(phi3, {name: value}, inputs).parameters


def test_the_components_declared_bound_wins_over_the_rule() -> None:
    spec: Inputs = {
        "lora_r": {"type": "integer", "min": 4},
        "lora_dropout": {"type": "number", "max": 0.5},
    }
    with pytest.raises(ParameterError, match="at least 4"):
        fit_to_component({"lora_r": 2}, spec)
    with pytest.raises(ParameterError, match=r"at most 0\.5"):
        fit_to_component({"lora_dropout": 0.7}, spec)
    with pytest.raises(ParameterError, match="at least 0"):  # the rule's side the spec omits
        fit_to_component({"lora_dropout": -0.1}, spec)


def test_the_component_defaults_pass_the_rules(inputs: Inputs) -> None:
    defaults = {
        k: v["default"]
        for k, v in inputs.items()
        if "default" in v and k not in finetune_params.WIRED_INPUTS
    }
    assert fit_to_component(defaults, inputs).parameters.keys() == defaults.keys()
