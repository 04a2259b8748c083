"""Configuration: precedence, provenance and refusal of impossible values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.config import BY_NAME, OPTIONS, check_workspace, resolve
from harness.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_depend_on_the_backend() -> None:
    local = resolve(env={})
    azure = resolve(cli={"backend": "azure"}, env={})
    assert (local.backend, azure.backend) == ("local", "azure")
    assert local.model_name == "Phi-3-tiny-ultrachat"
    assert azure.model_name == "Phi-3-mini-4k-instruct"
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


# --- the local workspace: refused at start-up when it cannot be a writable directory -------

NO_PROC = not Path("/proc/self").is_dir()


def unusable_workspaces(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    return {
        "file": (afile, "is a file"),
        "under a file": (afile / "ws", "is a file"),
        "unwritable": (Path("/proc/harness-ws"), "not writable"),
    }


@pytest.mark.parametrize("kind", ["file", "under a file", "unwritable"])
@pytest.mark.parametrize("source", ["option", "env"])
def test_an_unusable_workspace_names_where_it_was_set(
    tmp_path: Path, kind: str, source: str
) -> None:
    if kind == "unwritable" and NO_PROC:
        pytest.skip("needs /proc")
    path, problem = unusable_workspaces(tmp_path)[kind]
    cfg = (
        resolve(cli={"workspace_dir": str(path)}, env={})
        if source == "option"
        else resolve(env={"HARNESS_WORKSPACE": str(path)})
    )
    with pytest.raises(ConfigError) as err:
        check_workspace(cfg)
    message = str(err.value)
    assert str(path) in message and problem in message and "--workspace" in message
    assert ("env HARNESS_WORKSPACE" in message) == (source == "env")


@pytest.mark.parametrize("source", ["option", "env"])
def test_an_unusable_model_cache_names_its_option(tmp_path: Path, source: str) -> None:
    path, problem = unusable_workspaces(tmp_path)["under a file"]
    workspace = str(tmp_path / "ws")
    cfg = (
        resolve(cli={"workspace_dir": workspace, "model_cache_dir": str(path)}, env={})
        if source == "option"
        else resolve(cli={"workspace_dir": workspace}, env={"HARNESS_MODEL_CACHE": str(path)})
    )
    with pytest.raises(ConfigError) as err:
        check_workspace(cfg)
    message = str(err.value)
    assert f"the model cache {path} cannot be used" in message and problem in message
    assert "--model-cache" in message and "HARNESS_MODEL_CACHE" in message
    assert ("env HARNESS_MODEL_CACHE" in message) == (source == "env")


def test_the_model_cache_defaults_to_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = resolve(env={})
    assert cfg.model_cache_dir == tmp_path / "llm-finetune-harness" / "models"
    assert cfg.sources["model_cache_dir"] == "default"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_workspace_is_refused(tmp_path: Path) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="not writable"):
        check_workspace(resolve(cli={"workspace_dir": str(read_only / "ws")}, env={}))


def test_a_usable_workspace_passes_and_nothing_is_created(tmp_path: Path) -> None:
    check_workspace(resolve(cli={"workspace_dir": str(tmp_path / "new" / "ws")}, env={}))
    check_workspace(resolve(cli={"workspace_dir": str(tmp_path)}, env={}))
    assert list(tmp_path.iterdir()) == []


def test_the_azure_backend_ignores_the_workspace(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    check_workspace(resolve(cli={"backend": "azure", "workspace_dir": str(afile)}, env={}))
