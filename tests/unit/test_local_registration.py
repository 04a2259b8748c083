"""Registering a model directory: bad directories and tags are refused before any write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.backends.local import checkpoints
from harness.backends.local.checkpoints import check_model_dir
from harness.backends.local.compute import LOCAL_SKUS
from harness.backends.local.models import tiny_model_tags
from harness.errors import ConfigError, TagError
from harness.tags import model_card

pytestmark = pytest.mark.unit


def model_dir(tmp_path: Path, *files: str) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    for name in files:
        (path / name).write_text("{}")
    return path


def test_a_complete_directory_is_accepted(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "config.json", "model-00001-of-00002.safetensors", "tokenizer.json")
    assert check_model_dir(path) == path.resolve()


@pytest.mark.parametrize(("files", "missing"), [
    (("config.json", "tokenizer.json"), "weights"),
    (("config.json", "pytorch_model.bin"), "tokenizer"),
    (("model.safetensors", "tokenizer.model"), "config.json"),
])
def test_an_incomplete_directory_names_what_is_missing(tmp_path: Path, files: tuple[str, ...],
                                                       missing: str) -> None:
    with pytest.raises(ConfigError, match=missing) as raised:
        check_model_dir(model_dir(tmp_path, *files))
    assert "save_pretrained" in str(raised.value)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_model_dir(tmp_path / "nowhere")


def test_the_cli_refuses_a_directory_without_weights_before_creating_a_registry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = model_dir(tmp_path, "config.json", "tokenizer.json")
    workspace = tmp_path / "workspace"
    code = main(["register-model", str(path), "--name", "M", "--workspace", str(workspace)])
    assert code == 2 and "weights" in capsys.readouterr().err
    assert not workspace.exists()


def test_tags_files_are_converted_to_the_registry_string_format(tmp_path: Path) -> None:
    tags_file = tmp_path / "tags.json"
    tags_file.write_text(json.dumps({"tags": {
        "model_specific_defaults": {"learning_rate": 1e-4, "apply_lora": "true"},
        "finetune_compute_allow_list": ["Local_GPU"]}}))
    tags = checkpoints.load_tags(tags_file, "Phi-3-mini-4k-instruct")
    assert tags["finetune_compute_allow_list"] == '["Local_GPU"]'
    card = model_card("Phi-3-mini-4k-instruct", "1", "models:/x/1", tags)
    assert card.model_specific_defaults == {"learning_rate": 1e-4, "apply_lora": "true"}
    assert card.inference_allow_list == LOCAL_SKUS and card.task == "chat-completion"


def test_allow_lists_without_a_local_sku_are_refused(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "harness/resources/phi-3-mini-4k-instruct.tags.json"
    with pytest.raises(ConfigError, match="names no local SKU"):
        checkpoints.load_tags(shipped, "Phi-3-mini-4k-instruct")


def test_malformed_tags_are_refused(tmp_path: Path) -> None:
    tags_file = tmp_path / "tags.json"
    tags_file.write_text(json.dumps({"model_specific_defaults": "{not json"}))
    with pytest.raises(TagError):
        checkpoints.load_tags(tags_file, "M")


def test_the_tiny_models_tags_parse_like_a_registry_models() -> None:
    card = model_card("Phi-3-tiny-ultrachat", "1", "models:/Phi-3-tiny-ultrachat/1",
                      tiny_model_tags())
    assert card.finetune_allow_list == LOCAL_SKUS == card.inference_allow_list
    assert card.model_specific_defaults["apply_deepspeed"] == "false"
    assert card.task == "chat-completion"
