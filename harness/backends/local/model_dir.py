"""Checks on a Hugging Face model directory before anything is registered.

A directory without weights or without a tokenizer would register fine and fail minutes later
inside the training job; rejecting it here names the directory and what is missing.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError

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
