"""Registering a real Hugging Face checkpoint (e.g. Phi-3-mini-4k-instruct on a GPU box) as a
foundation model of the local registry: ``python -m harness register-model DIR --name N``.

Everything that can be wrong with the input (missing weights or tokenizer, malformed tags,
allow-lists without a local SKU) is rejected before anything is written to the registry: a
directory without weights would otherwise register fine and fail minutes later in the job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends.local import mlflow_model, registry
from harness.backends.local.compute import LOCAL_SKUS
from harness.backends.local.models import model_run
from harness.backends.local.registry import TAG_KIND
from harness.backends.local.workspace import Workspace
from harness.errors import ConfigError, HarnessError
from harness.model_card import encode_tag, model_card
from harness.naming import check_model_name

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

DEFAULT_TAGS = {
    "finetune_compute_allow_list": encode_tag(list(LOCAL_SKUS)),
    "inference_compute_allow_list": encode_tag(list(LOCAL_SKUS)),
    "model_specific_defaults": "{}",
    "task": "chat-completion",
}
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


def check_model_dir(path: Path) -> Path:
    """The absolute directory if it holds a config, weights and a tokenizer; else ConfigError."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(
            f"model directory {path} does not exist; pass a directory written by "
            "save_pretrained (config.json, weights, tokenizer files)"
        )
    missing = [what for what, ok in _checks(path) if not ok]
    if missing:
        found = sorted(p.name for p in path.iterdir())[:20]
        raise ConfigError(
            f"model directory {path} cannot be registered: missing {', '.join(missing)}; "
            f"found {found or 'nothing'}; save the model and its tokenizer there with "
            "save_pretrained (or download a complete checkpoint) and try again"
        )
    return path


def _checks(path: Path) -> list[tuple[str, bool]]:
    weights = any(next(path.glob(pattern), None) for pattern in WEIGHT_PATTERNS)
    tokenizer = any((path / name).is_file() for name in TOKENIZER_FILES)
    return [
        ("config.json", (path / "config.json").is_file()),
        ("weights (*.safetensors or pytorch_model*.bin)", weights),
        (f"a tokenizer (one of {', '.join(TOKENIZER_FILES)})", tokenizer),
    ]


def load_tags(path: Path | None, name: str) -> dict[str, str]:
    """Default local tags, overridden by the file's (``{"tags": {...}}`` or a flat object)."""
    raw: Any = {}
    if path is not None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read tags file {path}: {exc}; pass a JSON object") from exc
    raw = raw.get("tags", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"tags file {path} holds {type(raw).__name__}, expected a JSON object")
    tags = {**DEFAULT_TAGS, **{str(k): encode_tag(v) for k, v in raw.items()}}
    check_tags(tags, name)
    return tags


def check_tags(tags: Mapping[str, str], name: str) -> None:
    card = model_card(name, "new", f"models:/{name}/new", tags)  # TagError when malformed
    for label, allowed in (
        ("finetune", card.finetune_allow_list),
        ("inference", card.inference_allow_list),
    ):
        if allowed is not None and not {a.casefold() for a in allowed} & {
            s.casefold() for s in LOCAL_SKUS
        }:
            raise ConfigError(
                f"the {label}_compute_allow_list tag of {name} ({', '.join(allowed)}) names no "
                f"local SKU, so the local backend could never use the model; add one of "
                f"{', '.join(LOCAL_SKUS)} to it in the tags file"
            )


def register_directory(
    ws: Workspace, source: Path, name: str, tags: Mapping[str, str]
) -> ModelVersion:
    """Register a Hugging Face checkpoint directory as a new version of ``name``.

    Everything is checked before the first write; a failure after it (Ctrl-C included) leaves
    no run and no copied files.
    """
    check_model_name(name, "--name")
    source = check_model_dir(source)
    model_card(name, "new", registry.model_id(name, "new"), tags)  # malformed tags fail here
    with model_run(ws, name) as (run_id, out):
        try:
            mlflow_model.save_directory(source, out)
        except Exception as exc:  # re-raised with the directory named
            raise HarnessError(
                f"saving {source} as an MLflow model failed ({type(exc).__name__}: {exc}); check"
                " that transformers can load the directory (AutoConfig/AutoTokenizer) and try again"
            ) from exc
        return registry.register(ws, name, str(out), run_id, {**tags, TAG_KIND: "foundation"})
