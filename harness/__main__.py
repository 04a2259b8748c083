"""``python -m harness``: ``plan`` (an offline dry run) and ``sweep`` (the janitor).

``plan`` runs every decision the suite would make before creating anything (SKU, parameters,
names, tags) so that a bad option or a malformed model tag is found in a second, offline.
``sweep`` deletes owned, expired resources left by earlier runs and never touches the others.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from harness import compute, config, finetune, naming
from harness.errors import ConfigError, HarnessError
from harness.tags import ModelCard, model_card

if TYPE_CHECKING:
    from harness.backends.base import Backend, OwnedResource

SHIPPED_MODEL_CARD = Path(__file__).parent / "resources" / "phi-3-mini-4k-instruct.tags.json"
EXIT_REFUSED = 2
EXIT_DELETE_FAILED = 1
_UNITS_H = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}


class _Parser(argparse.ArgumentParser):
    """Turns argparse's usage errors into ConfigError, printed like every other refusal."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; see {self.prog} --help")


def parse_duration_h(text: str) -> float:
    """``6h``, ``30m``, ``2d``, ``90s`` or plain hours, as hours."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise ConfigError(
            f"--older-than {text!r} is not a duration; use a number with s, m, h or d "
            "(e.g. 6h, 30m, 2d)"
        )
    return float(match.group(1)) * _UNITS_H[match.group(2) or "h"]


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}; pass a readable JSON file") from exc


def load_model_card(path: Path, default_version: str = "latest") -> ModelCard:
    """A card from a JSON file shaped like the registry's answer (name, version, tags)."""
    data = _read_json(path, "model card")
    if not isinstance(data, dict) or not isinstance(data.get("tags"), dict):
        raise ConfigError(
            f"model card {path} needs a 'tags' object (and 'name'); see "
            "tests/unit/data/phi-3-mini-4k-instruct.tags.json for the shape"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model card {path} has no 'name'; add the model's registry name")
    version = str(data.get("version") or default_version)
    model_id = str(data.get("id") or f"azureml://registries/azureml/models/{name}/versions/{version}")
    return model_card(name, version, model_id, data["tags"])


def _plan_parser(sub: Any) -> None:
    plan = sub.add_parser("plan", help="print what a run would do, offline (JSON)")
    plan.add_argument("--model-card", type=Path, default=SHIPPED_MODEL_CARD,
                      help="JSON with name, version and tags as the registry returns them")
    plan.add_argument("--component-inputs", type=Path, default=None,
                      help="JSON with the pipeline component's 'inputs' (default: shipped copy)")
    plan.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per fine-tune node")
    config.add_argparse_options(plan)


def _sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="delete owned, expired resources of earlier runs")
    sweep.add_argument("--older-than", default=None,
                       help="also delete owned resources created longer ago than this (6h, 2d)")
    sweep.add_argument("--dry-run", action="store_true", help="only print what would go")
    config.add_argparse_options(sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _plan_parser(sub)
    _sweep_parser(sub)
    return parser


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Every decision of a run, without touching a backend."""
    cfg = config.from_namespace(args)
    if args.gpus_per_node < 1:
        raise ConfigError(f"--gpus-per-node must be at least 1, got {args.gpus_per_node}")
    card = load_model_card(args.model_card, cfg.model_version)
    sku = compute.choose_finetune_sku(card, cfg.compute_sku)
    instance_type = compute.choose_instance_type(card, cfg.instance_type)
    inputs = finetune.load_component_inputs(args.component_inputs)
    fitted = finetune.plan_parameters(card, cfg.finetune_overrides, inputs,
                                      cfg.allow_dropped_params)
    return {
        "run_id": cfg.run_id,
        "backend": cfg.backend,
        "model": {"name": card.name, "version": card.version, "id": card.id},
        "compute_sku": sku,
        "gpus_per_node": args.gpus_per_node,
        "finetune_parameters": fitted.parameters,
        "dropped_parameters": fitted.dropped,
        "display_name": finetune.display_name(card.name, fitted.parameters, args.gpus_per_node),
        "instance_type": instance_type,
        "endpoint_name": naming.endpoint_name(cfg.run_id),
        "deployment_name": naming.deployment_name(cfg.run_id),
        "tags": naming.ownership_tags(cfg.run_id, cfg.resource_ttl_h),
        "dataset": cfg.dataset,
        "dataset_percent": cfg.dataset_percent,
    }


def sweep(args: argparse.Namespace) -> int:
    """Delete (or list) owned, expired resources; try them all, then report failures."""
    older_than_h = None if args.older_than is None else parse_duration_h(args.older_than)
    cfg = config.from_namespace(args)
    from harness.backends import create_backend

    backend = create_backend(cfg)
    try:
        doomed = [
            r for r in backend.list_owned_resources()
            if naming.is_owned(r.tags) and naming.is_expired(r.tags, older_than_h=older_than_h)
        ]
        return _delete_all(backend, doomed, args.dry_run)
    finally:
        backend.close()


def _delete_all(backend: Backend, resources: Sequence[OwnedResource], dry_run: bool) -> int:
    verb = "would delete" if dry_run else "deleting"
    failures = 0
    for resource in resources:
        run_id = resource.tags.get(naming.TAG_RUN_ID)
        expires = resource.tags.get(naming.TAG_EXPIRES)
        print(f"{verb} {resource.kind} {resource.name} (run {run_id}, expires {expires})")
        if dry_run:
            continue
        try:
            backend.delete_resource(resource)
        except Exception as exc:  # a janitor reports each failure and goes on to the next
            failures += 1
            print(f"error: could not delete {resource.kind} {resource.name}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"sweep: {len(resources)} expired owned resource(s), {failures} failed")
    return EXIT_DELETE_FAILED if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; a refusal prints ``error: <message>`` and returns 2, no traceback."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "plan":
            print(json.dumps(plan(args), indent=2, sort_keys=True))
            return 0
        return sweep(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
