"""Configuration: precedence, provenance and refusal of impossible values."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import BY_NAME, OPTIONS, resolve
from harness.errors import ConfigError


def test_defaults_depend_on_the_backend() -> None:
    local = resolve(env={})
    azure = resolve(cli={"backend": "azure"}, env={})
    assert (local.backend, azure.backend) == ("local", "azure")
    assert local.model_name == "Phi-3-tiny-ultrachat"
    assert azure.model_name == "Phi-4-mini-instruct"
    assert azure.azure_model_registry == azure.azure_component_registry == "azureml"
    assert azure.dataset == "HuggingFaceH4/ultrachat_200k" and azure.dataset_percent == 5.0
    assert Path(local.dataset).is_dir() and local.dataset_percent == 100.0
    assert azure.sources["model_name"] == "default for the azure backend"
    assert local.model_version == "latest"


def test_option_beats_env_beats_ini_beats_default() -> None:
    ini = {"compute_sku": "Ini_SKU", "instance_type": "Ini_Type", "scoring_samples": "4"}
    env = {"HARNESS_COMPUTE_SKU": "Env_SKU", "HARNESS_INSTANCE_TYPE": "Env_Type"}
    cfg = resolve(cli={"compute_sku": "Cli_SKU"}, env=env, ini=ini)
    assert (cfg.compute_sku, cfg.instance_type, cfg.scoring_samples) == ("Cli_SKU", "Env_Type", 4)
    assert cfg.sources["compute_sku"] == "option --compute-sku"
    assert cfg.sources["instance_type"] == "env HARNESS_INSTANCE_TYPE"
    assert cfg.sources["scoring_samples"] == "ini harness_scoring_samples"
    assert cfg.sources["dataset_percent"] == "default for the local backend"


def test_backend_from_env_picks_that_backends_defaults() -> None:
    cfg = resolve(env={"HARNESS_BACKEND": "azure"})
    assert cfg.dataset_percent == 5.0


def test_azure_variables_are_read() -> None:
    env = {"AZURE_SUBSCRIPTION_ID": "sub", "AZURE_RESOURCE_GROUP": "rg", "AZURE_ML_WORKSPACE": "ws"}
    cfg = resolve(cli={"backend": "azure"}, env=env)
    assert (cfg.azure_subscription_id, cfg.azure_resource_group, cfg.azure_workspace) == (
        "sub",
        "rg",
        "ws",
    )
    assert cfg.missing_azure_settings() == []


def test_missing_azure_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = resolve(cli={"backend": "azure"}, env={}).missing_azure_settings()
    assert any("--azure-subscription-id" in item for item in missing)
    (tmp_path / "config.json").write_text("{}")
    assert resolve(cli={"backend": "azure"}, env={}).missing_azure_settings() == []
    assert resolve(env={}).missing_azure_settings() == []


def test_finetune_overrides_are_repeatable_key_value_pairs() -> None:
    cfg = resolve(cli={"finetune_params": ["learning_rate=2e-5", "lora_r = 8"]}, env={})
    assert cfg.finetune_overrides == {"learning_rate": "2e-5", "lora_r": "8"}
    from_env = resolve(env={"HARNESS_FINETUNE_PARAMS": "seed=1, max_steps=3"})
    assert from_env.finetune_overrides == {"seed": "1", "max_steps": "3"}


def test_dropped_parameters_are_refused_unless_allowed() -> None:
    assert resolve(env={}).allow_dropped_params is False
    assert resolve(env={"HARNESS_ALLOW_DROPPED_PARAMS": "1"}).allow_dropped_params is True
    assert resolve(cli={"allow_dropped_params": True}, env={}).allow_dropped_params is True


@pytest.mark.parametrize(
    "name, value, named",
    [
        ("dataset_percent", "0", "--dataset-percent"),
        ("dataset_percent", "100.5", "--dataset-percent"),
        ("job_timeout_s", "-1", "--job-timeout"),
        ("backend", "gcp", "--backend"),
        ("finetune_params", ["learning_rate"], "--finetune-param"),
        ("finetune_params", ["=3"], "--finetune-param"),
        ("scoring_samples", "0", "--scoring-samples"),
        ("run_id", "Bad_Id", "--run-id"),
    ],
)
def test_impossible_values_name_the_option(name: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        resolve(cli={name: value}, env={})


def test_impossible_env_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="env HARNESS_DATASET_PERCENT"):
        resolve(env={"HARNESS_DATASET_PERCENT": "abc"})


def test_run_id_is_generated_and_experiment_derived() -> None:
    cfg = resolve(cli={"model_name": "M"}, env={})
    assert cfg.sources["run_id"] == "generated" and cfg.run_id[0].isalpha()
    assert cfg.experiment_name == "chat_completion_M"


def test_header_names_every_non_default_source() -> None:
    cfg = resolve(cli={"keep_resources": True}, env={"HARNESS_MODEL_VERSION": "15"})
    header = "\n".join(cfg.header_lines())
    assert "keep_resources=True (option --keep-resources)" in header
    assert "model_version=15 (env HARNESS_MODEL_VERSION)" in header


def test_every_option_has_a_distinct_flag() -> None:
    flags = [option.cli for option in OPTIONS]
    assert len(set(flags)) == len(flags)
    assert BY_NAME["workspace_dir"].cli == "--workspace"


def test_the_dataclass_and_both_front_ends_are_built_from_one_declaration() -> None:
    import argparse
    import dataclasses

    from harness.config import HarnessConfig, add_argparse_options

    declared = [f.name for f in dataclasses.fields(HarnessConfig) if f.name != "sources"]
    assert [option.name for option in OPTIONS] == declared
    parser = argparse.ArgumentParser()
    add_argparse_options(parser, BY_NAME)
    flags = {a.dest: a.option_strings for a in parser._actions if a.dest != "help"}
    assert flags == {option.name: [option.cli] for option in OPTIONS}
    parsed = parser.parse_args(["--workspace=/tmp/w", "--tolerance", "a=1", "--keep-resources"])
    assert (parsed.workspace_dir, parsed.tolerances, parsed.keep_resources) == (
        "/tmp/w",
        ["a=1"],
        True,
    )
    assert parsed.backend is None  # not given: env, ini and default still fall through
