"""``python -m harness.backends.local.cli register-model DIR --name NAME [--tags-file F]``.

Registers a real Hugging Face checkpoint (e.g. Phi-3-mini-4k-instruct on a GPU machine) as a
foundation model of the local registry. Everything that can be wrong with the input (a name
outside the registry's rule, missing weights or tokenizer, malformed tags, allow-lists without
a local SKU) is rejected before anything is written to the registry, and a failure after the
first write (Ctrl-C included) leaves no run and no copied files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.backends.local.defaults import LOCAL_SKUS
from harness.backends.local.model_dir import check_model_dir
from harness.errors import ConfigError, HarnessError
from harness.naming import check_model_name
from harness.tags import model_card

DEFAULT_TAGS = {
    "finetune_compute_allow_list": repr(list(LOCAL_SKUS)),
    "inference_compute_allow_list": repr(list(LOCAL_SKUS)),
    "model_specific_defaults": "{}",
    "task": "chat-completion",
}


def registry_string(value: Any) -> str:
    """A tag value in the registry's format: lists as Python reprs, dicts as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return repr(list(value))
    return json.dumps(value)


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
    tags = {**DEFAULT_TAGS, **{str(k): registry_string(v) for k, v in raw.items()}}
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


def workspace_dir(option: Path | None) -> Path:
    """The workspace the harness would use (--workspace > HARNESS_WORKSPACE > default)."""
    from harness.config import resolve

    cli = {"backend": "local", "workspace_dir": str(option) if option else None}
    return resolve(cli=cli, ini={}).workspace_dir


def register_model(args: argparse.Namespace) -> None:
    from harness.backends.local import foundation
    from harness.backends.local.env import set_offline
    from harness.backends.local.workspace import Workspace

    check_model_name(args.name, "--name")  # before anything is read or written
    set_offline()  # the checkpoint is loaded here: never reach for the hub

    source = check_model_dir(args.directory)
    tags = load_tags(args.tags_file, args.name)
    ws = Workspace.at(workspace_dir(args.workspace))
    version = foundation.register_directory(ws, source, args.name, tags)
    print(f"registered {args.name}:{version.version} from {source} in {ws.tracking_uri}")


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m harness.backends.local.cli")
    commands = main_parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register-model", help="register a Hugging Face model dir")
    register.add_argument("directory", type=Path, help="directory written by save_pretrained")
    register.add_argument("--name", required=True, help="registered model name")
    register.add_argument("--tags-file", type=Path, help="JSON object of tags (registry format)")
    register.add_argument("--workspace", type=Path, help="local backend workspace directory")
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        register_model(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
