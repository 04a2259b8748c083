"""One frozen ``HarnessConfig``, resolved from CLI option > HARNESS_* env > ini > default.

Each value remembers where it came from: a nightly failure caused by a stray environment
variable is then visible in the report header instead of being a guessing game.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

BACKENDS = ("local", "azure")
RESOURCES = Path(__file__).resolve().parent / "resources"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(text: str) -> bool:
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


def _positive(unit: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not value > 0:
            raise ValueError(f"must be a positive number of {unit}")
        return value

    return parse


_seconds, _hours = _positive("seconds"), _positive("hours")


def _percent(text: str) -> float:
    value = float(text)
    if not 0 < value <= 100:
        raise ValueError("must be in (0, 100]")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _backend(text: str) -> str:
    if text not in BACKENDS:
        raise ValueError(f"unknown backend; choose one of {', '.join(BACKENDS)}")
    return text


def _run_id(text: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]{2,19}", text):
        raise ValueError("must be 3-20 lowercase letters or digits, starting with a letter")
    return text


def parse_override(text: str) -> tuple[str, str]:
    """``key=value`` (a fine-tune parameter or a tolerance); ConfigError when it is not."""
    try:
        return _override(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _compute_name(text: str) -> str:
    from harness.naming import compute_name_problems

    problems = compute_name_problems(text)
    if problems:
        raise ValueError(
            f"not a valid Azure compute name ({'; '.join(problems)}): 3-24 "
            "letters, digits or '-', a letter first, each '-' followed later by a "
            "letter"
        )
    return text


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
        raise ValueError(f"{text!r} is not key=value (e.g. learning_rate=2e-5)")
    return key.strip(), value.strip()


def _compare_to(text: str) -> str:
    if text != "last" and not Path(text).expanduser().is_file():
        raise ValueError("must be `last` or the path of an existing report.json")
    return text


@dataclass(frozen=True)
class Option:
    """One setting: its flag, how to parse text, and its default (maybe per backend)."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    per_backend: Mapping[str, Any] | None = None
    flag: bool = False  # a store_true option
    repeat: bool = False  # repeatable option, a list of parsed values
    env: tuple[str, ...] = ()  # further environment variables, after HARNESS_<NAME>

    @property
    def cli(self) -> str:
        return _FLAGS.get(self.name, "--" + self.name.replace("_", "-"))

    @property
    def env_names(self) -> tuple[str, ...]:
        return (f"HARNESS_{self.name.upper()}", *self.env)

    @property
    def ini(self) -> str:
        return f"harness_{self.name}"


_FLAGS = {
    "finetune_params": "--finetune-param",
    "tolerances": "--tolerance",
    "history_dir": "--history",
    "workspace_dir": "--workspace",
    "model_cache_dir": "--model-cache",
    "resource_ttl_h": "--resource-ttl",
    "job_not_responding_grace_s": "--job-not-responding-grace",
    **{
        f"{stage}_timeout_s": f"--{stage}-timeout"
        for stage in ("compute", "job", "endpoint", "deployment", "scoring", "delete")
    },
}


def _local_dataset() -> str:
    return str(RESOURCES / "ultrachat_mini")


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"))


def _default_workspace() -> Path:
    return _user_cache() / "llm-finetune-harness" / "workspace"


def _default_model_cache() -> Path:
    """Next to the default workspace, shared by every workspace of this user on the machine."""
    return _user_cache() / "llm-finetune-harness" / "models"


OPTIONS: tuple[Option, ...] = (
    Option("backend", "where the workflow runs: local (this machine) or azure", _backend, "local"),
    Option(
        "model_name",
        "foundation model to fine-tune",
        per_backend={"local": "Phi-3-tiny-ultrachat", "azure": "Phi-3-mini-4k-instruct"},
    ),
    Option("model_version", "model version, or a label such as latest", default="latest"),
    Option(
        "compute_name",
        "compute cluster to use or create (unique in the Azure region)",
        _compute_name,
        per_backend={"local": "local", "azure": "harness-finetune-gpu"},
    ),
    Option(
        "compute_sku",
        "VM size of a created cluster (default: the first allow-listed size "
        "that is not retired and is offered in the region)",
    ),
    Option(
        "instance_type",
        "inference instance type (default: the first allow-listed type "
        "that is not retired and is offered in the region)",
    ),
    Option(
        "strict_deprecation",
        "fail instead of warning when the model is past its fine-tune retirement date",
        _bool,
        False,
        flag=True,
    ),
    Option(
        "dataset",
        "hub id or local directory in the ultrachat_200k layout",
        per_backend={"local": _local_dataset(), "azure": "HuggingFaceH4/ultrachat_200k"},
    ),
    Option(
        "dataset_percent",
        "percent of each split to use, in (0, 100]",
        _percent,
        per_backend={"local": 100.0, "azure": 5.0},
    ),
    Option(
        "allow_invalid_rows",
        "drop invalid dataset rows instead of failing",
        _bool,
        False,
        flag=True,
    ),
    Option(
        "finetune_params",
        "override a fine-tune parameter, key=value (repeatable)",
        _override,
        (),
        repeat=True,
    ),
    Option(
        "allow_dropped_params",
        "drop --finetune-param keys that are no input of the "
        "fine-tune component instead of failing",
        _bool,
        False,
        flag=True,
    ),
    Option("run_id", "id stamped on every resource (default: generated)", _run_id),
    Option("scoring_samples", "test_gen conversations to score", _positive_int, 3),
    Option(
        "compute_timeout_s",
        "deadline for compute creation, seconds",
        _seconds,
        per_backend={"local": 60.0, "azure": 1800.0},
    ),
    Option(
        "job_timeout_s",
        "deadline for the fine-tune job, seconds",
        _seconds,
        per_backend={"local": 900.0, "azure": 6 * 3600.0},
    ),
    Option(
        "job_not_responding_grace_s",
        "how long a job may stay NotResponding before the run fails, seconds",
        _seconds,
        1800.0,
    ),
    Option(
        "endpoint_timeout_s",
        "deadline for endpoint creation, seconds",
        _seconds,
        per_backend={"local": 120.0, "azure": 1800.0},
    ),
    Option(
        "deployment_timeout_s",
        "deadline for the deployment, seconds",
        _seconds,
        per_backend={"local": 300.0, "azure": 3600.0},
    ),
    Option("scoring_timeout_s", "deadline for one scoring request, seconds", _seconds, 90.0),
    Option(
        "delete_timeout_s",
        "how long teardown waits for one deletion, seconds (after "
        "Ctrl-C or SIGTERM: 5 s, the sweep finishes slow ones)",
        _seconds,
        per_backend={"local": 10.0, "azure": 1800.0},
    ),
    Option(
        "keep_resources", "keep what a failed run created, for debugging", _bool, False, flag=True
    ),
    Option(
        "workspace_dir",
        "local backend's workspace directory",
        Path,
        None,
        env=("HARNESS_WORKSPACE",),
    ),
    Option(
        "model_cache_dir",
        "where the local backend keeps the default model it built, for every workspace on "
        "this machine (default: ~/.cache/llm-finetune-harness/models)",
        Path,
        None,
        env=("HARNESS_MODEL_CACHE",),
    ),
    Option(
        "local_train_processes",
        "data-parallel processes of a local fine-tune job "
        "(default: one per GPU, or 1 on a CPU; N on a CPU shares the cores over gloo)",
        _positive_int,
        None,
    ),
    Option("resource_ttl_h", "hours after which the sweep may delete a resource", _hours, 6.0),
    Option("experiment_name", "experiment the job is filed under"),
    Option(
        "report_dir",
        "where the run report is written (report.json, .md, .html, plots)",
        Path,
        Path("harness-report"),
    ),
    Option(
        "history_dir",
        "history of run reports, by model name and version (default: "
        "<workspace>/history locally, ./harness-history on Azure)",
        Path,
        None,
    ),
    Option(
        "compare_to",
        "compare this run with `last` (the last passing run of the model in "
        "the history) or a report.json, and fail on a regression",
        _compare_to,
    ),
    Option(
        "tolerances",
        "relative tolerance of a compared figure, figure=fraction (repeatable; "
        "e.g. eval_loss_after=0.05)",
        _override,
        (),
        repeat=True,
    ),
    Option("azure_subscription_id", "Azure subscription id", env=("AZURE_SUBSCRIPTION_ID",)),
    Option("azure_resource_group", "Azure resource group", env=("AZURE_RESOURCE_GROUP",)),
    Option("azure_workspace", "Azure ML workspace name", env=("AZURE_ML_WORKSPACE",)),
    Option("azure_registry", "registry holding foundation models", default="azureml"),
    Option("azure_config_file", "workspace config.json", Path, None),
    Option("interactive_login", "allow a browser login (never in CI)", _bool, False, flag=True),
    Option(
        "require_live",
        "fail instead of skipping when Azure settings are missing",
        _bool,
        False,
        flag=True,
    ),
)
BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class HarnessConfig:
    """Every setting of a run; ``sources`` says where each value came from."""

    backend: str
    model_name: str
    model_version: str
    compute_name: str
    compute_sku: str | None
    instance_type: str | None
    strict_deprecation: bool
    dataset: str
    dataset_percent: float
    allow_invalid_rows: bool
    finetune_params: tuple[tuple[str, str], ...]
    allow_dropped_params: bool
    run_id: str
    scoring_samples: int
    compute_timeout_s: float
    job_timeout_s: float
    job_not_responding_grace_s: float
    endpoint_timeout_s: float
    deployment_timeout_s: float
    scoring_timeout_s: float
    delete_timeout_s: float
    keep_resources: bool
    workspace_dir: Path
    model_cache_dir: Path
    local_train_processes: int | None
    resource_ttl_h: float
    experiment_name: str
    report_dir: Path
    history_dir: Path
    compare_to: str | None
    tolerances: tuple[tuple[str, str], ...]
    azure_subscription_id: str | None
    azure_resource_group: str | None
    azure_workspace: str | None
    azure_registry: str
    azure_config_file: Path | None
    interactive_login: bool
    require_live: bool
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def finetune_overrides(self) -> dict[str, str]:
        return dict(self.finetune_params)

    def missing_azure_settings(self) -> list[str]:
        """What the Azure backend lacks to find a workspace (empty for the local backend)."""
        if self.backend != "azure":
            return []
        needed = ("azure_subscription_id", "azure_resource_group", "azure_workspace")
        missing = [n for n in needed if getattr(self, n) is None]
        if not missing or (self.azure_config_file or Path("config.json")).is_file():
            return []
        return [f"{BY_NAME[n].cli} (or {BY_NAME[n].env_names[-1]})" for n in missing] + [
            "or a workspace config file (--azure-config-file, default ./config.json)"
        ]

    def report_options(self) -> dict[str, str]:
        """Every setting as text with its source, for the run report."""
        return {n: f"{_show(getattr(self, n))} ({self.sources.get(n, 'default')})" for n in BY_NAME}

    def header_lines(self) -> list[str]:
        """The report header: every value that is not a plain default, then the defaults."""
        shown = [n for n in BY_NAME if not self.sources.get(n, "default").startswith("default")]
        lines = [f"harness: {n}={_show(getattr(self, n))} ({self.sources[n]})" for n in shown]
        rest = [f"{n}={_show(getattr(self, n))}" for n in BY_NAME if n not in shown]
        return [*lines, f"harness defaults ({self.backend} backend): " + ", ".join(rest)]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join("=".join(pair) if isinstance(pair, tuple) else str(pair) for pair in value)
    return str(value)


def _parse(option: Option, raw: Any, where: str) -> Any:
    """Parse one raw value; text from env/ini is split for repeatable options."""
    try:
        if option.repeat:
            items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
            return tuple(option.parse(item) if isinstance(item, str) else item for item in items)
        return option.parse(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise ConfigError(
            f"{where}: invalid value {raw!r} for {option.cli}: {exc}. Fix it or remove it."
        ) from None


def _lookup(
    option: Option, cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any]
) -> tuple[Any, str] | None:
    """The first source that sets this option, parsed, with its description."""
    if cli.get(option.name) not in (None, [], ()):
        return _parse(option, cli[option.name], f"option {option.cli}"), f"option {option.cli}"
    for name in option.env_names:
        if env.get(name, "") != "":
            return _parse(option, env[name], f"env {name}"), f"env {name}"
    if ini.get(option.name) not in (None, "", []):
        return _parse(option, ini[option.name], f"ini {option.ini}"), f"ini {option.ini}"
    return None


def _default(option: Option, backend: str) -> tuple[Any, str]:
    if option.per_backend is not None:
        return option.per_backend[backend], f"default for the {backend} backend"
    return option.default, "default"


def resolve(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    ini: Mapping[str, Any] | None = None,
) -> HarnessConfig:
    """Build the config; raises ConfigError naming the option for an impossible value."""
    cli, env, ini = cli or {}, os.environ if env is None else env, ini or {}
    unknown = set(cli) - set(BY_NAME)
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}; known: {sorted(BY_NAME)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    backend_found = _lookup(BY_NAME["backend"], cli, env, ini)
    backend = backend_found[0] if backend_found else "local"
    for option in OPTIONS:
        found = _lookup(option, cli, env, ini) or _default(option, backend)
        values[option.name], sources[option.name] = found
    _derive(values, sources)
    return HarnessConfig(**values, sources=sources)


def _derive(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Fill the values whose default depends on other values."""
    if values["run_id"] is None:
        from harness.naming import new_run_id

        values["run_id"], sources["run_id"] = new_run_id(), "generated"
    if values["experiment_name"] is None:
        values["experiment_name"] = f"chat_completion_{values['model_name']}"
        sources["experiment_name"] = "derived from model_name"
    if values["workspace_dir"] is None:
        values["workspace_dir"], sources["workspace_dir"] = _default_workspace(), "default"
    values["workspace_dir"] = Path(values["workspace_dir"]).expanduser().resolve()
    if values["model_cache_dir"] is None:
        values["model_cache_dir"], sources["model_cache_dir"] = _default_model_cache(), "default"
    values["model_cache_dir"] = Path(values["model_cache_dir"]).expanduser().resolve()
    if values["history_dir"] is None:
        local = values["backend"] == "local"
        values["history_dir"] = (
            values["workspace_dir"] / "history" if local else Path("harness-history")
        )
        sources["history_dir"] = f"default for the {values['backend']} backend"
    for name in ("report_dir", "history_dir"):
        values[name] = Path(values[name]).expanduser().resolve()


def workspace_problem(path: Path) -> str | None:
    """Why the local workspace cannot live at ``path``, or None; leaves nothing behind.

    The deepest part of the path that exists must be a directory this process can create
    files in. That is tried, not read from permission bits, which say nothing about root or
    a read-only mount.
    """
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        return f"{existing} cannot be inspected ({exc.strerror or exc})"
    if not is_dir:
        return f"{existing} is a file, not a directory"
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".harness-probe-").cleanup()
    except OSError as exc:
        return f"{existing} is not writable ({exc.strerror or exc})"
    return None


def check_workspace_dir(path: Path, source: str | None = None) -> None:
    """ConfigError naming --workspace (and where the value came from) when ``path`` cannot
    hold the local workspace."""
    _check_dir(path, source, "the local workspace", "--workspace", "HARNESS_WORKSPACE")


def check_model_cache_dir(path: Path, source: str | None = None) -> None:
    """ConfigError naming --model-cache when the machine's model cache cannot live at ``path``."""
    _check_dir(path, source, "the model cache", "--model-cache", "HARNESS_MODEL_CACHE")


def _check_dir(path: Path, source: str | None, what: str, flag: str, env: str) -> None:
    problem = workspace_problem(path)
    if problem:
        example = Path(tempfile.gettempdir()) / f"harness-{flag.lstrip('-')}"
        where = f"{source}: " if source else ""
        raise ConfigError(
            f"{where}{what} {path} cannot be used: {problem}; pass {flag} "
            f"(or set {env}) with a directory you can write, e.g. {example}"
        )


def check_workspace(cfg: HarnessConfig) -> None:
    """The local backend's directories, checked at start-up (the Azure backend has none)."""
    if cfg.backend == "local":
        check_workspace_dir(cfg.workspace_dir, cfg.sources.get("workspace_dir"))
        check_model_cache_dir(cfg.model_cache_dir, cfg.sources.get("model_cache_dir"))


def add_argparse_options(parser: argparse.ArgumentParser) -> None:
    """The same options as the pytest plugin, for ``python -m harness``."""
    group = parser.add_argument_group("harness")
    for option in OPTIONS:
        if option.flag:
            group.add_argument(
                option.cli, dest=option.name, action="store_true", default=None, help=option.help
            )
        else:
            group.add_argument(
                option.cli,
                dest=option.name,
                default=None,
                help=option.help,
                action="append" if option.repeat else "store",
            )


def add_pytest_options(parser: Any) -> None:
    """Register every option as a pytest CLI option and ini value (``harness_<name>``)."""
    group = parser.getgroup("harness", "fine-tuning acceptance harness")
    for option in OPTIONS:
        dest = f"harness_{option.name}"
        if option.flag:
            group.addoption(
                option.cli, dest=dest, action="store_true", default=None, help=option.help
            )
        else:
            group.addoption(
                option.cli,
                dest=dest,
                default=None,
                help=option.help,
                action="append" if option.repeat else "store",
            )
        parser.addini(option.ini, option.help, type="linelist" if option.repeat else "string")


def from_pytest(config: Any) -> HarnessConfig:
    """Resolve from a pytest ``Config``: its options, os.environ and pytest.ini."""
    cli = {o.name: config.getoption(f"harness_{o.name}") for o in OPTIONS}
    ini = {o.name: config.getini(o.ini) for o in OPTIONS}
    return resolve(cli={k: v for k, v in cli.items() if v is not None}, env=os.environ, ini=ini)


def from_namespace(
    namespace: argparse.Namespace, env: Mapping[str, str] | None = None
) -> HarnessConfig:
    """Resolve from ``add_argparse_options`` results (values left None fall through)."""
    cli = {o.name: getattr(namespace, o.name, None) for o in OPTIONS}
    return resolve(cli={k: v for k, v in cli.items() if v is not None}, env=env)
