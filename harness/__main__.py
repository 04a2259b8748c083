"""``python -m harness``: the harness's commands (``python -m harness --help`` lists them).

This module parses the command line and dispatches: the plan is made in ``harness.plan``,
the janitor is ``harness.sweep``, the rest in the module each command names.

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
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness import config, naming
from harness import sweep as janitor
from harness.errors import ConfigError, HarnessError
from harness.plan import SHIPPED_MODEL_CARD, plan, plan_card
from harness.sweep import parse_duration_h
from harness.trend import DEFAULT_LAST

__all__ = ["COMMAND_SETTINGS", "build_parser", "main", "parse_args", "parse_duration_h"]

EXIT_REFUSED = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
EXIT_CHECK_FAILED = 1


# The harness settings each command reads: its --help lists these and no other, and the pytest
# run has them all. A command that creates a backend reads what that backend's code reads
# (tests/unit/test_cli_options.py records the reads of every command's code paths).
_AZURE_BACKEND = ("finetune_route", "serverless", "interactive_login")  # and its credential
_AZURE_WORKSPACE = (
    "azure_subscription_id",
    "azure_resource_group",
    "azure_workspace",
    "azure_config_file",
)
_AZURE_REGISTRIES = ("azure_model_registry", "azure_component_registry")
_MODEL_CARD = ("model_name", "model_version", "strict_deprecation", "compute_sku", "instance_type")
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "plan": (
        "backend",
        *_MODEL_CARD,
        "dataset",
        "dataset_percent",
        "finetune_params",
        "allow_dropped_params",
        "run_id",
        "resource_ttl_h",
        *_AZURE_BACKEND,
        *_AZURE_REGISTRIES,
    ),
    "check": (
        "backend",
        *_MODEL_CARD,
        "compute_name",
        *_AZURE_BACKEND,
        *_AZURE_WORKSPACE,
        *_AZURE_REGISTRIES,
    ),
    "sweep": (
        "backend",
        "workspace_dir",
        "model_cache_dir",
        "resource_ttl_h",
        "delete_timeout_s",
        *_AZURE_BACKEND,
        *_AZURE_WORKSPACE,
    ),
    "register-model": ("workspace_dir",),
    "versions": (
        "backend",
        "workspace_dir",
        "history_dir",
        "model_name",
        *_AZURE_BACKEND,
        "azure_model_registry",
    ),
    "compare": (),
    "trend": ("backend", "workspace_dir", "history_dir", "model_name", "tolerances"),
    "replay": (),
    "model-cache": ("model_cache_dir",),
}


class _Parser(argparse.ArgumentParser):
    """Turns argparse's usage errors into ConfigError, printed like every other refusal.

    No abbreviations: ``plan --workspace=DIR`` (a setting plan does not read) would
    otherwise be taken for plan's ``--workspace-sizes``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; see {self.prog} --help")


def _plan_parser(sub: Any) -> None:
    plan = sub.add_parser("plan", help="print what a run would do, offline (JSON)")
    plan.add_argument(
        "--model-card",
        type=Path,
        default=None,
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
    config.add_argparse_options(plan, COMMAND_SETTINGS["plan"])


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
    check.add_argument("--json", action="store_true", help="the findings as JSON, for scripts")
    config.add_argparse_options(check, COMMAND_SETTINGS["check"])


def _sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="delete owned, expired resources of earlier runs")
    sweep.add_argument(
        "--older-than",
        default=None,
        help="also delete owned resources created longer ago than this (6h, 2d)",
    )
    sweep.add_argument("--dry-run", action="store_true", help="only print what would go")
    sweep.add_argument(
        "--json",
        action="store_true",
        help="what was found, deleted and kept (and why), and the errors, as JSON for scripts",
    )
    config.add_argparse_options(sweep, COMMAND_SETTINGS["sweep"])


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
    config.add_argparse_options(register, COMMAND_SETTINGS["register-model"])


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
    config.add_argparse_options(versions, COMMAND_SETTINGS["versions"])


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


def _trend_parser(sub: Any) -> None:
    trend = sub.add_parser(
        "trend",
        help="each gated figure over the last runs of a model in the history, with its band",
    )
    trend.add_argument("--last", type=int, default=DEFAULT_LAST, help="how many runs (14)")
    trend.add_argument("--json", action="store_true", help="the trend as JSON")
    config.add_argparse_options(trend, COMMAND_SETTINGS["trend"])


def _replay_parser(sub: Any) -> None:
    from harness.replay import add_arguments

    add_arguments(
        sub.add_parser(
            "replay",
            help="run the e2e suite on --backend azure against a recorded conversation "
            "(--record-traffic), offline and without credentials",
        )
    )


def _model_cache_parser(sub: Any) -> None:
    cache = sub.add_parser(
        "model-cache",
        help="print the local backend's model cache directory and its key, as path=... and "
        "key=... lines (append them to $GITHUB_OUTPUT for actions/cache)",
    )
    config.add_argparse_options(cache, COMMAND_SETTINGS["model-cache"])


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
    _trend_parser(sub)
    _replay_parser(sub)
    _model_cache_parser(sub)
    return parser


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
    failed = [f for f in findings if f.level == FAIL]
    if args.json:
        found = [dataclasses.asdict(f) for f in findings]
        print(json.dumps({"could_start": not failed, "findings": found}, indent=2))
        return EXIT_CHECK_FAILED if failed else 0
    for finding in findings:
        print(finding.line())
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
    older_than_h = None if args.older_than is None else parse_duration_h(args.older_than)
    return janitor.sweep(config.from_namespace(args), older_than_h, args.dry_run, args.json)


def register_model(args: argparse.Namespace) -> int:
    """Check the directory and tags, then register: nothing is written when a check fails."""
    from harness.backends.local import checkpoints
    from harness.backends.local.offline import set_offline
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
    cfg = config.from_namespace(args)
    decisions = plan(
        cfg,
        args.model_card or SHIPPED_MODEL_CARD,
        args.component_inputs,
        args.workspace_sizes,
        args.gpus_per_node,
        None if args.model_card else plan_card(cfg),
    )
    print(json.dumps(decisions, indent=2, sort_keys=True))
    return 0


def versions(args: argparse.Namespace) -> int:
    """The registry's versions of the model, against the history's passing runs."""
    from harness.backends import create_backend
    from harness.versions import versions_command

    cfg = config.from_namespace(args)
    backend = create_backend(cfg, warm_up=False)
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


def trend(args: argparse.Namespace) -> int:
    from harness.trend import trend_command
    from harness.verdict import tolerances

    cfg = config.from_namespace(args)
    print(trend_command(cfg.history_dir, cfg.model_name, args.last, tolerances(cfg), args.json))
    return 0


def replay(args: argparse.Namespace) -> int:
    from harness.replay import command

    return command(args)


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
    "trend": trend,
    "replay": replay,
    "model-cache": model_cache,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse's parse, with what a command does not take refused naming that command's
    --help (argparse names the top level's) and the commands that read a harness setting."""
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        raise ConfigError(_unrecognized(args.command, extra))
    return args


def _unrecognized(command: str, extra: Sequence[str]) -> str:
    by_flag = {option.cli: option.name for option in config.OPTIONS}
    settings = [f for f in dict.fromkeys(a.partition("=")[0] for a in extra) if f in by_flag]
    notes = [
        f"{command} does not read the setting {flag} (read by the pytest run"
        + "".join(f", {c}" for c, names in COMMAND_SETTINGS.items() if by_flag[flag] in names)
        + ")"
        for flag in settings
    ]
    return "; ".join(
        [
            f"unrecognized arguments: {' '.join(extra)}",
            *notes,
            f"see python -m harness {command} --help",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; a refusal prints ``error: <message>`` and returns 2, no traceback."""
    try:
        args = parse_args(argv)
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except BrokenPipeError:  # `... | head` stopped reading: end quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would raise again
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
