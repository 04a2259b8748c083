"""One frozen ``HarnessConfig``, resolved from CLI option > HARNESS_* env > ini > default.

Each value remembers where it came from: a nightly failure caused by a stray environment
variable is then visible in the report header instead of being a guessing game.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

BACKENDS = ("local", "azure")
# The service's two fine-tuning routes (harness/backends/azure/: jobs.py, finetuning_jobs.py).
PIPELINE, FINETUNING_JOB = "pipeline", "finetuning-job"
FINETUNE_ROUTES = (PIPELINE, FINETUNING_JOB)
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


def _route(text: str) -> str:
    if text not in FINETUNE_ROUTES:
        raise ValueError(f"unknown fine-tuning route; choose one of {', '.join(FINETUNE_ROUTES)}")
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


def _local_dataset() -> str:
    return str(RESOURCES / "ultrachat_mini")


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"))


def _default_workspace() -> Path:
    return _user_cache() / "llm-finetune-harness" / "workspace"


def _default_model_cache() -> Path:
    """Next to the default workspace, shared by every workspace of this user on the machine."""
    return _user_cache() / "llm-finetune-harness" / "models"


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
    cli_name: str | None = None  # the flag, when it is not --<name with dashes>

    @property
    def cli(self) -> str:
        return self.cli_name or "--" + self.name.replace("_", "-")

    @property
    def env_names(self) -> tuple[str, ...]:
        return (f"HARNESS_{self.name.upper()}", *self.env)

    @property
    def ini(self) -> str:
        return f"harness_{self.name}"

    @property
    def action(self) -> str:
        return "store_true" if self.flag else "append" if self.repeat else "store"


def setting(
    help: str,
    parse: Callable[[str], Any] = str,
    default: Any = None,
    *,
    per_backend: Mapping[str, Any] | None = None,
    flag: bool = False,
    repeat: bool = False,
    env: tuple[str, ...] = (),
    cli: str | None = None,
) -> Any:
    """A ``HarnessConfig`` field that carries its option, so that the dataclass, the argparse
    options, the pytest options and ini values are all built from one declaration (as TRL's
    ``SFTConfig`` fields carry their help for its CLI). The field has no dataclass default:
    ``resolve`` always passes every value."""
    option = Option("", help, parse, default, per_backend, flag, repeat, env, cli)
    return field(metadata={"option": option})


@dataclass(frozen=True)
class HarnessConfig:
    """Every setting of a run; ``sources`` says where each value came from.

    Each field is declared once, with its option (``setting``): ``OPTIONS`` is read from these
    fields, and every front end (pytest, ``python -m harness``) is built from ``OPTIONS``.
    """

    backend: str = setting(
        "where the workflow runs: local (this machine) or azure", _backend, "local"
    )
    model_name: str = setting(
        "foundation model to fine-tune",
        # Azure: the docs' replacement for the archived, retired Phi-3-mini-4k-instruct
        per_backend={"local": "Phi-3-tiny-ultrachat", "azure": "Phi-4-mini-instruct"},
    )
    model_version: str = setting("model version, or a label such as latest", default="latest")
    compute_name: str = setting(
        "compute cluster to use or create (unique in the Azure region)",
        _compute_name,
        per_backend={"local": "local", "azure": "harness-finetune-gpu"},
    )
    compute_sku: str | None = setting(
        "VM size of a created cluster (default: the allow-listed size with the fewest "
        "GPUs that is not retired and is offered in the region; required, with "
        "--instance-type, when the registry returns no allow-lists)"
    )
    instance_type: str | None = setting(
        "inference instance type (default: the allow-listed type with the fewest GPUs "
        "that is not retired and is offered in the region)"
    )
    strict_deprecation: bool = setting(
        "fail instead of warning when the model is past its fine-tune retirement date",
        _bool,
        False,
        flag=True,
    )
    dataset: str = setting(
        "hub id or local directory in the ultrachat_200k layout",
        per_backend={"local": _local_dataset(), "azure": "HuggingFaceH4/ultrachat_200k"},
    )
    dataset_percent: float = setting(
        "percent of each split to use, in (0, 100]",
        _percent,
        per_backend={"local": 100.0, "azure": 5.0},
    )
    allow_invalid_rows: bool = setting(
        "drop invalid dataset rows instead of failing", _bool, False, flag=True
    )
    finetune_params: tuple[tuple[str, str], ...] = setting(
        "override a fine-tune parameter, key=value (repeatable)",
        _override,
        (),
        repeat=True,
        cli="--finetune-param",
    )
    allow_dropped_params: bool = setting(
        "drop --finetune-param keys that are no input of the "
        "fine-tune component instead of failing",
        _bool,
        False,
        flag=True,
    )
    run_id: str = setting("id stamped on every resource (default: generated)", _run_id)
    scoring_samples: int = setting("test_gen conversations to score", _positive_int, 3)
    compute_timeout_s: float = setting(
        "deadline for compute creation, seconds",
        _seconds,
        per_backend={"local": 60.0, "azure": 1800.0},
        cli="--compute-timeout",
    )
    job_timeout_s: float = setting(
        "deadline for the fine-tune job, seconds",
        _seconds,
        per_backend={"local": 900.0, "azure": 6 * 3600.0},
        cli="--job-timeout",
    )
    job_not_responding_grace_s: float = setting(
        "how long a job may stay NotResponding before the run fails, seconds",
        _seconds,
        1800.0,
        cli="--job-not-responding-grace",
    )
    endpoint_timeout_s: float = setting(
        "deadline for endpoint creation, seconds",
        _seconds,
        per_backend={"local": 120.0, "azure": 1800.0},
        cli="--endpoint-timeout",
    )
    deployment_timeout_s: float = setting(
        "deadline for the deployment, seconds",
        _seconds,
        per_backend={"local": 300.0, "azure": 3600.0},
        cli="--deployment-timeout",
    )
    scoring_timeout_s: float = setting(
        "deadline for one scoring request, seconds", _seconds, 90.0, cli="--scoring-timeout"
    )
    delete_timeout_s: float = setting(
        "how long teardown waits for one deletion, seconds (after "
        "Ctrl-C or SIGTERM: 5 s, the sweep finishes slow ones)",
        _seconds,
        per_backend={"local": 10.0, "azure": 1800.0},
        cli="--delete-timeout",
    )
    keep_resources: bool = setting(
        "keep what a failed run created, for debugging", _bool, False, flag=True
    )
    workspace_dir: Path = setting(
        "local backend's workspace directory",
        Path,
        None,
        env=("HARNESS_WORKSPACE",),
        cli="--workspace",
    )
    model_cache_dir: Path = setting(
        "where the local backend keeps the default model it built, for every workspace on "
        "this machine (default: ~/.cache/llm-finetune-harness/models)",
        Path,
        None,
        env=("HARNESS_MODEL_CACHE",),
        cli="--model-cache",
    )
    local_train_processes: int | None = setting(
        "data-parallel processes of a local fine-tune job "
        "(default: one per GPU, or 1 on a CPU; N on a CPU shares the cores over gloo)",
        _positive_int,
        None,
    )
    resource_ttl_h: float = setting(
        "hours after which the sweep may delete a resource", _hours, 6.0, cli="--resource-ttl"
    )
    experiment_name: str = setting("experiment the job is filed under")
    report_dir: Path = setting(
        "where the run report is written (report.json, .md, .html, plots)",
        Path,
        Path("harness-report"),
    )
    history_dir: Path = setting(
        "history of run reports, by model name and version (default: "
        "<workspace>/history locally, ./harness-history on Azure)",
        Path,
        None,
        cli="--history",
    )
    compare_to: str | None = setting(
        "compare this run with `last` (the last passing run of the model in "
        "the history) or a report.json, and fail on a regression",
        _compare_to,
    )
    tolerances: tuple[tuple[str, str], ...] = setting(
        "relative tolerance of a compared figure, figure=fraction (repeatable; "
        "e.g. eval_loss_after=0.05)",
        _override,
        (),
        repeat=True,
        cli="--tolerance",
    )
    record_traffic: Path | None = setting(
        "write this process's whole Azure HTTP conversation, scrubbed of secrets, as a "
        "cassette (0600) into this directory; `python -m harness replay DIR` plays it back",
        Path,
        None,
    )
    azure_subscription_id: str | None = setting(
        "Azure subscription id", env=("AZURE_SUBSCRIPTION_ID",)
    )
    azure_resource_group: str | None = setting(
        "Azure resource group", env=("AZURE_RESOURCE_GROUP",)
    )
    azure_workspace: str | None = setting("Azure ML workspace name", env=("AZURE_ML_WORKSPACE",))
    azure_model_registry: str = setting(
        "registry holding the foundation model (e.g. azureml-meta, azureml-openai-oss)",
        default="azureml",
    )
    azure_component_registry: str = setting(
        "registry holding the chat_completion_pipeline component", default="azureml"
    )
    finetune_route: str = setting(
        "how Azure ML fine-tunes: pipeline (the registry's chat_completion_pipeline) or "
        "finetuning-job (the FineTuning job type, api-version 2024-10-01-preview)",
        _route,
        PIPELINE,
    )
    serverless: bool = setting(
        "with --finetune-route finetuning-job: fine-tune serverless (pay per token) and "
        "deploy the model as a serverless endpoint instead of managed compute",
        _bool,
        False,
        flag=True,
    )
    azure_config_file: Path | None = setting("workspace config.json", Path, None)
    interactive_login: bool = setting(
        "allow a browser login (never in CI)", _bool, False, flag=True
    )
    require_live: bool = setting(
        "fail instead of skipping when Azure settings are missing", _bool, False, flag=True
    )
    github_annotations: bool = setting(
        "print each failing test as a GitHub Actions ::error annotation (on in GitHub Actions)",
        _bool,
        False,
        flag=True,
        env=("GITHUB_ACTIONS",),
    )
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def finetune_overrides(self) -> dict[str, str]:
        return dict(self.finetune_params)

    @property
    def route(self) -> str:
        """The run's route as the report and the history name it (``route_name``)."""
        return route_name(self.finetune_route, self.serverless)

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


OPTIONS: tuple[Option, ...] = tuple(
    replace(f.metadata["option"], name=f.name) for f in fields(HarnessConfig) if f.metadata
)
BY_NAME = {option.name: option for option in OPTIONS}
ENV_NAMES = frozenset(name for option in OPTIONS for name in option.env_names)
_PATH_VALUED = ("dataset", "compare_to")  # parsed as text: a hub id, or `last`
PATH_OPTIONS = frozenset(o.cli for o in OPTIONS if o.parse is Path or o.name in _PATH_VALUED)


def misspelled_environment(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``HARNESS_*`` name that is no setting but looks like one
    (``HARNESS_JOB_TIMEOUT`` for ``HARNESS_JOB_TIMEOUT_S``): a setting that silently does
    nothing is a night lost. Names like no setting (a user's own variables) are left alone."""
    import difflib

    known = sorted(n for n in ENV_NAMES if n.startswith("HARNESS_"))
    warnings = []
    for name in sorted(n for n in env if n.startswith("HARNESS_") and n not in ENV_NAMES):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            warnings.append(
                f"environment variable {name} is not a harness setting and is ignored; "
                f"did you mean {close[0]}?"
            )
    return warnings


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
    _check_route(values, sources)
    return HarnessConfig(**values, sources=sources)


def route_name(finetune_route: str, serverless: bool) -> str:
    """``pipeline``, ``finetuning-job`` or ``finetuning-job-serverless``: one name per route
    a run can take, so that runs of different routes are never compared with each other."""
    return f"{finetune_route}-serverless" if serverless else finetune_route


def recorded_route(options: Mapping[str, Any]) -> str:
    """``route_name`` of a finished run, from its report's options (recorded as "value
    (source)"); a report from before the route options existed ran the pipeline."""

    def value(name: str) -> str:
        return str(options.get(name) or "").partition(" (")[0]

    return route_name(value("finetune_route") or PIPELINE, value("serverless") == "True")


def _check_route(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """The route options only make sense together and on Azure: refuse the rest up front."""
    route, flag = BY_NAME["finetune_route"].cli, BY_NAME["serverless"].cli
    if values["serverless"] and values["finetune_route"] != FINETUNING_JOB:
        raise ConfigError(
            f"{sources['serverless']}: {flag} needs {route} {FINETUNING_JOB} (the pipeline "
            f"route always runs on a cluster); pass {route} {FINETUNING_JOB} or drop {flag}"
        )
    if values["backend"] != "azure" and values["finetune_route"] != PIPELINE:
        raise ConfigError(
            f"{sources['finetune_route']}: {route} {values['finetune_route']} is a route of "
            f"Azure ML; the {values['backend']} backend has one route; pass --backend azure "
            f"or drop {route}"
        )


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
    if values["record_traffic"] is not None:
        values["record_traffic"] = Path(values["record_traffic"]).expanduser().resolve()


def check_record_traffic(cfg: HarnessConfig) -> None:
    """--record-traffic needs the Azure backend (the local one sends no Azure traffic) and a
    directory, checked at start-up so a nightly does not learn it after hours."""
    path, option = cfg.record_traffic, BY_NAME["record_traffic"]
    if path is None:
        return
    where = cfg.sources.get("record_traffic", option.cli)
    if cfg.backend != "azure":
        raise ConfigError(
            f"{where}: {option.cli} records the Azure conversation and the {cfg.backend} "
            "backend has none; pass --backend azure, or drop the option"
        )
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{where}: {option.cli} {path} is a file; pass a directory (it is created when "
            "missing), e.g. --record-traffic=harness-report/cassettes"
        )


SETTINGS_GROUP = "harness settings (also HARNESS_* variables and pytest options)"


def add_argparse_options(parser: argparse.ArgumentParser, only: Iterable[str]) -> None:
    """The pytest plugin's options named in ``only`` (the settings a ``python -m harness``
    command reads), so that its --help lists those and no setting it would ignore."""
    wanted = set(only)
    unknown = wanted - set(BY_NAME)
    if unknown:
        raise ValueError(f"no such settings: {sorted(unknown)}")
    group = parser.add_argument_group(SETTINGS_GROUP)
    _add_options(group.add_argument, lambda o: o.name, [o for o in OPTIONS if o.name in wanted])


def add_pytest_options(parser: Any) -> None:
    """Register every option as a pytest CLI option and ini value (``harness_<name>``)."""
    group = parser.getgroup("harness", "fine-tuning acceptance harness")
    _add_options(group.addoption, _dest, OPTIONS)
    for option in OPTIONS:
        parser.addini(option.ini, option.help, type="linelist" if option.repeat else "string")


def _dest(option: Option) -> str:
    return f"harness_{option.name}"


def _add_options(
    add: Callable[..., Any], dest: Callable[[Option], str], options: Iterable[Option]
) -> None:
    """One flag per option; None when not given, so that env, ini and default fall through."""
    for option in options:
        add(option.cli, dest=dest(option), action=option.action, default=None, help=option.help)


def from_pytest(config: Any) -> HarnessConfig:
    """Resolve from a pytest ``Config``: its options, os.environ and pytest.ini."""
    cli = {o.name: config.getoption(_dest(o)) for o in OPTIONS}
    ini = {o.name: config.getini(o.ini) for o in OPTIONS}
    return resolve(cli={k: v for k, v in cli.items() if v is not None}, env=os.environ, ini=ini)


def from_namespace(
    namespace: argparse.Namespace, env: Mapping[str, str] | None = None
) -> HarnessConfig:
    """Resolve from ``add_argparse_options`` results (values left None fall through)."""
    cli = {o.name: getattr(namespace, o.name, None) for o in OPTIONS}
    return resolve(cli={k: v for k, v in cli.items() if v is not None}, env=env)
