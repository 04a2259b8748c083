"""``python -m harness``: the harness's commands (``python -m harness --help`` lists them).

``plan`` runs every decision the suite would make before creating anything (SKU, parameters,
names, tags) so that a bad option or a malformed model card is found in a second, offline.
``check`` asks a live Azure workspace, read-only, whether a nightly run could start.
``sweep`` deletes owned, expired resources left by earlier runs and never touches the others.
``register-model`` registers a real checkpoint as a foundation model of the local backend.
``versions`` lists a model's registry versions and which still lack a passing run (for a CI
matrix); ``compare`` compares two run reports and fails on a regression. ``model-cache`` prints
where the local backend keeps its built default model and the cache key (for CI's cache).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from harness import compute, config, finetune, lifecycle, naming, tags
from harness.backends.base import ResourceKind, VmSize, delete_resource
from harness.errors import ConfigError, HarnessError
from harness.tags import ModelCard, model_card

if TYPE_CHECKING:
    from harness.backends.base import Backend, OwnedResource

SHIPPED_MODEL_CARD = Path(__file__).parent / "resources" / "phi-3-mini-4k-instruct.model.json"
EXIT_REFUSED = 2
EXIT_DELETE_FAILED = 1
EXIT_CHECK_FAILED = 1
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
    """A card from a JSON file shaped like the registry's answer: name, version, tags,
    system_metadata (objects or JSON text) and isArchived."""
    data = _read_json(path, "model card")
    shape = "see harness/resources/phi-3-mini-4k-instruct.model.json for the shape"
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tags", {}), dict)
        or not (isinstance(data.get("system_metadata", {}), dict))
    ):
        raise ConfigError(
            f"model card {path} needs 'tags' and/or 'system_metadata' objects (and 'name'); {shape}"
        )
    if "tags" not in data and "system_metadata" not in data:
        raise ConfigError(f"model card {path} has neither 'tags' nor 'system_metadata'; {shape}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model card {path} has no 'name'; add the model's registry name")
    version = str(data.get("version") or default_version)
    model_id = str(
        data.get("id") or f"azureml://registries/azureml/models/{name}/versions/{version}"
    )
    return model_card(
        name,
        version,
        model_id,
        data.get("tags", {}),
        data.get("system_metadata", {}),
        bool(data.get("isArchived")),
    )


def load_vm_sizes(path: Path) -> list[VmSize]:
    """The region's sizes from a JSON file as ``ml_client.compute.list_sizes()`` returns them
    (a list of objects with ``name`` and optionally ``gpus``, ``v_cp_us``, ``family``), or
    the REST answer ``{"value": [...]}`` with ``vCPUs``."""
    data = _read_json(path, "workspace sizes")
    items = data.get("value") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
    ):
        raise ConfigError(
            f"workspace sizes {path} must be a list of objects with a 'name' (as "
            'compute.list_sizes() returns them, or the REST {"value": [...]}); '
            "`python -m harness check --backend azure` prints the region's sizes"
        )
    return [
        VmSize(
            i["name"],
            gpus=int(i.get("gpus") or 0),
            vcpus=int(i.get("v_cp_us") or i.get("vCPUs") or 0),
            family=str(i.get("family") or ""),
        )
        for i in items
    ]


def _plan_parser(sub: Any) -> None:
    plan = sub.add_parser("plan", help="print what a run would do, offline (JSON)")
    plan.add_argument(
        "--model-card",
        type=Path,
        default=SHIPPED_MODEL_CARD,
        help="JSON with name, version, tags, system_metadata and isArchived as "
        "the registry returns them (default: shipped Phi-3-mini-4k-instruct 15)",
    )
    plan.add_argument(
        "--component-inputs",
        type=Path,
        default=None,
        help="JSON with the pipeline component's 'inputs' (default: shipped copy)",
    )
    plan.add_argument(
        "--workspace-sizes",
        type=Path,
        default=None,
        help="JSON of the region's VM sizes as compute.list_sizes() returns them; "
        "defaults must then be offered there (default: region not checked)",
    )
    plan.add_argument(
        "--gpus-per-node",
        type=int,
        default=None,
        help="GPUs per fine-tune node (default: from --workspace-sizes, else 1)",
    )
    config.add_argparse_options(plan)


def _check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="ask a live Azure workspace, read-only, whether a "
        "nightly run could start (model, sizes, quota, endpoints)",
    )
    check.add_argument(
        "--endpoint-limit",
        type=int,
        default=None,
        help="online endpoints the subscription may hold per region (default: the documented 50)",
    )
    config.add_argparse_options(check)


def _sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="delete owned, expired resources of earlier runs")
    sweep.add_argument(
        "--older-than",
        default=None,
        help="also delete owned resources created longer ago than this (6h, 2d)",
    )
    sweep.add_argument("--dry-run", action="store_true", help="only print what would go")
    config.add_argparse_options(sweep)


def _register_parser(sub: Any) -> None:
    register = sub.add_parser(
        "register-model",
        help="register a Hugging Face checkpoint directory as a foundation "
        "model of the local backend",
    )
    register.add_argument("directory", type=Path, help="directory written by save_pretrained")
    register.add_argument("--name", required=True, help="registered model name")
    register.add_argument(
        "--tags-file",
        type=Path,
        help="JSON object of tags (registry format), over the local defaults",
    )
    config.add_argparse_options(register)


def _versions_parser(sub: Any) -> None:
    versions = sub.add_parser(
        "versions",
        help="list a model's registry versions and whether the history holds a passing run of each",
    )
    versions.add_argument(
        "--unvalidated",
        action="store_true",
        help="only the versions without a passing run (archived ones left out)",
    )
    versions.add_argument(
        "--include-archived", action="store_true", help="with --unvalidated: archived versions too"
    )
    versions.add_argument("--json", action="store_true", help="JSON for a CI matrix")
    config.add_argparse_options(versions)


def _compare_parser(sub: Any) -> None:
    compare = sub.add_parser(
        "compare",
        help="compare two run reports (report.json); exit 1 "
        "when a figure regressed past its tolerance",
    )
    compare.add_argument("old", type=Path, help="the baseline report.json")
    compare.add_argument("new", type=Path, help="the report.json to judge")
    compare.add_argument("--json", action="store_true", help="the comparison as JSON")
    compare.add_argument(
        "--tolerance",
        dest="tolerances",
        action="append",
        default=[],
        help="figure=fraction (repeatable), e.g. eval_loss_after=0.05",
    )


def _model_cache_parser(sub: Any) -> None:
    cache = sub.add_parser(
        "model-cache",
        help="print the local backend's model cache directory and its key, as path=... and "
        "key=... lines (append them to $GITHUB_OUTPUT for actions/cache)",
    )
    config.add_argparse_options(cache)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _plan_parser(sub)
    _check_parser(sub)
    _sweep_parser(sub)
    _register_parser(sub)
    _versions_parser(sub)
    _compare_parser(sub)
    _model_cache_parser(sub)
    return parser


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Every decision of a run, without touching a backend."""
    cfg = config.from_namespace(args)
    if args.gpus_per_node is not None and args.gpus_per_node < 1:
        raise ConfigError(f"--gpus-per-node must be at least 1, got {args.gpus_per_node}")
    card = load_model_card(args.model_card, cfg.model_version)
    notice = tags.retirement_notice(card, cfg.strict_deprecation)
    sizes = None if args.workspace_sizes is None else load_vm_sizes(args.workspace_sizes)
    offered = None if sizes is None else [size.name for size in sizes]
    sku = compute.choose_finetune_sku(card, cfg.compute_sku, offered)
    instance_type = compute.choose_instance_type(card, cfg.instance_type, offered)
    gpus = args.gpus_per_node or (
        compute.gpus_for_sku(sku, [(s.name, s.gpus) for s in sizes]) if sizes else 1
    )
    if gpus < 1:
        raise ConfigError(
            f"VM size {sku} has no GPU in {args.workspace_sizes}; pass "
            "--compute-sku with a GPU size"
        )
    inputs = finetune.load_component_inputs(args.component_inputs)
    fitted = finetune.plan_parameters(
        card, cfg.finetune_overrides, inputs, cfg.allow_dropped_params
    )
    return {
        "run_id": cfg.run_id,
        "backend": cfg.backend,
        "model": {"name": card.name, "version": card.version, "id": card.id},
        "model_sources": card.sources(),
        "model_deprecation": card.deprecation.describe(),
        "warnings": [notice] if notice else [],
        "region_checked": sizes is not None,
        "compute_sku": sku,
        "gpus_per_node": gpus,
        "finetune_parameters": fitted.parameters,
        "dropped_parameters": fitted.dropped,
        "display_name": finetune.display_name(card.name, fitted.parameters, gpus),
        "instance_type": instance_type,
        "endpoint_name": naming.endpoint_name(cfg.run_id),
        "deployment_name": naming.deployment_name(cfg.run_id),
        "tags": naming.ownership_tags(cfg.run_id, cfg.resource_ttl_h),
        "dataset": cfg.dataset,
        "dataset_percent": cfg.dataset_percent,
    }


def check(args: argparse.Namespace) -> int:
    """Read-only questions to a live Azure workspace; non-zero when a nightly would fail."""
    from harness.backends import create_backend
    from harness.backends.azure import AzureBackend
    from harness.backends.azure.check import DOCUMENTED_ENDPOINT_LIMIT, FAIL, run

    cfg = config.from_namespace(args)
    if cfg.backend != "azure":
        raise ConfigError(
            "check asks a live Azure ML workspace: pass --backend azure (the "
            "local backend needs no account and no check)"
        )
    missing = cfg.missing_azure_settings()
    if missing:
        raise ConfigError("check needs " + "; ".join(missing))
    limit = args.endpoint_limit or DOCUMENTED_ENDPOINT_LIMIT
    backend = create_backend(cfg)
    if not isinstance(backend, AzureBackend):
        raise ConfigError(f"check works on the Azure backend, got {backend.name}")
    try:
        findings = run(backend, limit)
    finally:
        backend.close(stop_owned=False)
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if f.level == FAIL]
    print(
        f"check: {len(failed)} problem(s); "
        + (
            "a nightly run would fail, see the FAIL lines"
            if failed
            else "a nightly run could start (quota and capacity can still change)"
        )
    )
    return EXIT_CHECK_FAILED if failed else 0


def sweep(args: argparse.Namespace) -> int:
    """Delete (or list) owned, expired resources; try them all, then report failures.

    The resources of a run that is still alive in this workspace are never deleted, whatever
    ``--older-than`` says; on Azure, where a run on another machine leaves no mark here,
    ``--older-than`` is what keeps them. Then the directories of finished runs go.
    """
    older_than_h = None if args.older_than is None else parse_duration_h(args.older_than)
    cfg = config.from_namespace(args)
    with _harness_log_on_stderr():
        return _sweep(args, cfg, older_than_h)


def _sweep(args: argparse.Namespace, cfg: config.HarnessConfig, older_than_h: float | None) -> int:
    from harness.backends import create_backend

    backend = create_backend(cfg)
    try:
        doomed = [
            r
            for r in backend.list_owned_resources()
            if naming.is_owned(r.tags) and naming.is_expired(r.tags, older_than_h=older_than_h)
        ]
        status = _delete_all(backend, doomed, args.dry_run, cfg)
    finally:
        backend.close(stop_owned=True)
    verb = "would remove" if args.dry_run else "removed"
    for directory in lifecycle.remove_dead_runs(cfg.workspace_dir, args.dry_run):
        print(f"{verb} the directory of finished run {directory.name}: {directory}")
    if cfg.backend == "local":
        from harness.backends.local.sweep import stale_model_builds

        hours = cfg.resource_ttl_h if older_than_h is None else older_than_h
        for path in stale_model_builds(cfg.model_cache_dir, hours, args.dry_run):
            print(f"{verb} the model cache's stale build {path}")
    return status


@contextlib.contextmanager
def _harness_log_on_stderr() -> Iterator[None]:
    """The janitor's warnings (a process it refused to stop, ...) go to stderr, one line each,
    for as long as the command runs: a caller that runs it in-process (a test, a notebook) keeps
    its own logging afterwards, and no handler is left writing to a stream that has closed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("harness")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _delete_all(
    backend: Backend, resources: Sequence[OwnedResource], dry_run: bool, cfg: config.HarnessConfig
) -> int:
    verb = "would delete" if dry_run else "deleting"
    failures = skipped = 0
    for resource in resources:
        run_id = resource.tags.get(naming.TAG_RUN_ID)
        expires = resource.tags.get(naming.TAG_EXPIRES)
        kind = ResourceKind(resource.kind).value
        if run_id and lifecycle.run_is_alive(cfg.workspace_dir, run_id):  # checked just before
            skipped += 1
            print(f"skipping {kind} {resource.name}: run {run_id} is still running")
            continue
        print(f"{verb} {kind} {resource.name} (run {run_id}, expires {expires})")
        if dry_run:
            continue
        try:
            delete_resource(backend, resource.kind, resource.name, cfg.delete_timeout_s)
        except Exception as exc:  # a janitor reports each failure and goes on to the next
            failures += 1
            print(
                f"error: could not delete {kind} {resource.name}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
    print(
        f"sweep: {len(resources)} expired owned resource(s), {skipped} of live runs skipped, "
        f"{failures} failed"
    )
    return EXIT_DELETE_FAILED if failures else 0


def register_model(args: argparse.Namespace) -> int:
    """Check the directory and tags, then register: nothing is written when a check fails."""
    from harness.backends.local import checkpoints
    from harness.backends.local.processes import set_offline
    from harness.backends.local.workspace import Workspace

    naming.check_model_name(args.name, "--name")  # before anything is read or written
    set_offline()  # the checkpoint is loaded here: never reach for the hub
    cfg = config.from_namespace(args)
    source = checkpoints.check_model_dir(args.directory)
    tags = checkpoints.load_tags(args.tags_file, args.name)
    ws = Workspace.at(cfg.workspace_dir)
    version = checkpoints.register_directory(ws, source, args.name, tags)
    print(f"registered {args.name}:{version.version} from {source} in {ws.tracking_uri}")
    return 0


def _print_plan(args: argparse.Namespace) -> int:
    print(json.dumps(plan(args), indent=2, sort_keys=True))
    return 0


def versions(args: argparse.Namespace) -> int:
    """The registry's versions of the model, against the history's passing runs."""
    from harness.backends import create_backend
    from harness.versions import versions_command

    cfg = config.from_namespace(args)
    backend = create_backend(cfg)
    try:
        found = backend.list_model_versions(cfg.model_name)
    finally:
        backend.close(stop_owned=True)
    print(
        versions_command(
            cfg.model_name,
            found,
            cfg.history_dir,
            args.unvalidated,
            args.json,
            args.include_archived,
        )
    )
    return 0


def compare(args: argparse.Namespace) -> int:
    from harness.comparison import Tolerances, compare_command

    tolerances = Tolerances.from_mapping(dict(config.parse_override(t) for t in args.tolerances))
    code, text = compare_command(args.old, args.new, tolerances, args.json)
    print(text, file=sys.stderr if code == 2 else sys.stdout)
    return code


def model_cache(args: argparse.Namespace) -> int:
    """Where the built default model is kept and under which key, for a CI cache step."""
    from harness.backends.local.model_cache import describe
    from harness.backends.local.models import DEFAULT_MODEL_NAME, default_recipe_key

    cfg = config.from_namespace(args)
    print("\n".join(describe(cfg.model_cache_dir, DEFAULT_MODEL_NAME, default_recipe_key())))
    return 0


COMMANDS = {
    "plan": _print_plan,
    "check": check,
    "sweep": sweep,
    "register-model": register_model,
    "versions": versions,
    "compare": compare,
    "model-cache": model_cache,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; a refusal prints ``error: <message>`` and returns 2, no traceback."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
