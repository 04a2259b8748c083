"""Each ``python -m harness`` command's ``--help`` lists the harness settings it reads, and
only those (``harness.__main__.COMMAND_SETTINGS``). The reads are recorded on ``HarnessConfig``
while each command runs its code paths (local, Azure against the fake, the Azure refusals that
read the connection settings): a setting a command reads but does not declare, or declares but
never reads, fails here; a setting a command does not read is refused naming its --help."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses

import harness.backends
from harness import naming
from harness.__main__ import COMMAND_SETTINGS, build_parser, main, parse_args
from harness.backends.local import checkpoints
from harness.config import BY_NAME, OPTIONS, SETTINGS_GROUP, HarnessConfig
from harness.errors import ConfigError
from tests.support.azure_fake import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML
from tests.support.azure_fake import make_backend as fake_backend

IDS = [
    f"--azure-subscription-id={SUBSCRIPTION}",
    f"--azure-resource-group={RESOURCE_GROUP}",
    f"--azure-workspace={WORKSPACE}",
]
# The Azure backend's two refusals before any request: they read the connection settings
NO_CONFIG_FILE = ["--backend=azure", "--azure-config-file=missing.json"]
BROWSER_IN_CI = ["--backend=azure", "--interactive-login"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("HARNESS_", "AZURE_", "GITHUB_")) or name in ("CI", "TF_BUILD"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HARNESS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)  # no ./config.json of the developer's


class _Sources(dict[str, str]):
    """``HarnessConfig.sources``, recording which settings' sources are asked for."""

    def __init__(self, sources: Mapping[str, str], read: set[str]) -> None:
        super().__init__(sources)
        self.read = read

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def _implied(name: str, cfg: HarnessConfig) -> set[str]:
    """Settings whose value made this one's default (``config._derive``, ``per_backend``)."""
    option, source = BY_NAME[name], cfg.sources.get(name, "")
    implied = {"backend"} if option.per_backend is not None else set()
    if name == "history_dir" and source.startswith("default"):
        implied |= {"backend", "workspace_dir"}
    if name == "experiment_name" and source.startswith("derived"):
        implied.add("model_name")
    return implied


@contextmanager
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """The settings read from any HarnessConfig meanwhile, and those their defaults came from."""
    read: set[str] = set()
    original = HarnessConfig.__getattribute__

    def record(self: HarnessConfig, name: str) -> Any:
        value = original(self, name)
        if name in BY_NAME:
            read.add(name)
            read.update(_implied(name, self))
        return _Sources(value, read) if name == "sources" else value

    with monkeypatch.context() as patch:
        patch.setattr(HarnessConfig, "__getattribute__", record)
        yield read


@contextmanager
def azure_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureML]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeAzureML(rsps, metadata_key="system_metadata")
        with monkeypatch.context() as patch:
            patch.setattr(harness.backends, "create_backend", lambda cfg, **_: fake_backend(cfg))
            yield fake
        fake.settle()


def expired_job(workspace: Path) -> None:
    """A killed run's fine-tune job in a local workspace, for the sweep to delete."""
    from harness.backends.local.registry import TAG_KIND
    from harness.backends.local.workspace import Workspace

    ws = Workspace.at(workspace)
    created = datetime.now(UTC) - timedelta(hours=8)
    tags = {**naming.ownership_tags("hkilled01", 6.0, now=created), TAG_KIND: "job"}
    ws.client().create_run(ws.experiment_id("chat_completion_tiny"), tags=tags)


def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint"
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


@dataclass(frozen=True)
class Way:
    """One code path of a command: its arguments, on the Azure fake or not, with CI set (a
    browser login is then refused before any request), and the exit status it ends with."""

    argv: list[str]
    fake: bool = False
    ci: bool = False
    code: int = 0
    killed_job: bool = False  # a killed run's expired job in the workspace


SERVERLESS = ["--finetune-route=finetuning-job", "--serverless"]
WAYS: dict[str, list[Way]] = {
    "plan": [
        Way(["plan"]),
        Way(["plan", "--backend=azure", *SERVERLESS]),
        Way(["plan", "--backend=azure", "--model-name=Phi-4"], fake=True),  # the registry
        Way(["plan", *BROWSER_IN_CI, "--model-name=Phi-4"], ci=True, code=2),
    ],
    "check": [
        Way(["check", "--backend=azure", *IDS, "--model-name=Phi-4"], fake=True),
        Way(["check", *NO_CONFIG_FILE], code=2),
        Way(["check", *BROWSER_IN_CI, *IDS], ci=True, code=1),  # a FAIL finding
    ],
    "sweep": [
        Way(["sweep"], killed_job=True),
        Way(["sweep", "--backend=azure", *IDS, *SERVERLESS], fake=True),
        Way(["sweep", *NO_CONFIG_FILE], code=2),
        Way(["sweep", *BROWSER_IN_CI, *IDS], ci=True, code=2),
    ],
    "register-model": [Way(["register-model", "{checkpoint}", "--name=Mine"])],
    "versions": [
        Way(["versions"]),
        Way(["versions", "--backend=azure", "--model-name=Phi-4", *SERVERLESS], fake=True),
        Way(["versions", *BROWSER_IN_CI], ci=True, code=2),
    ],
    "compare": [],
    "trend": [Way(["trend"])],
    "replay": [],
    "model-cache": [Way(["model-cache"])],
}


@contextmanager
def on_fake(fake: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not fake:
        yield
        return
    with azure_fake(monkeypatch):
        yield


def settings_read(
    way: Way, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> set[str]:
    argv = [str(checkpoint(tmp_path)) if a == "{checkpoint}" else a for a in way.argv]
    if way.killed_job:
        expired_job(Path(os.environ["HARNESS_WORKSPACE"]))
    with monkeypatch.context() as patch:
        # saving the checkpoint as an MLflow model takes no setting, and seconds of imports
        patch.setattr(checkpoints, "register_directory", lambda *a: SimpleNamespace(version=1))
        if way.ci:
            patch.setenv("CI", "true")
        with on_fake(way.fake, monkeypatch), reads(monkeypatch) as read:
            code = main(argv)
    assert code == way.code, (argv, capsys.readouterr().err)
    capsys.readouterr()
    return read


def flags(names: Iterable[str]) -> set[str]:
    return {BY_NAME[name].cli for name in names}


def test_every_command_is_declared() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(COMMAND_SETTINGS) == set(WAYS)


@pytest.mark.parametrize("command", sorted(WAYS))
def test_a_command_declares_exactly_the_settings_its_code_reads(
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    declared, union = set(COMMAND_SETTINGS[command]), set()
    for n, way in enumerate(WAYS[command]):
        read = settings_read(way, monkeypatch, capsys, tmp_path / str(n))
        assert read <= declared, f"{way.argv} reads undeclared {sorted(flags(read - declared))}"
        union |= read
    assert declared <= union, f"{command} declares, never reads {sorted(flags(declared - union))}"


def subcommand(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[command]  # type: ignore[no-any-return]


@pytest.mark.parametrize("command", sorted(WAYS))
def test_help_lists_the_declared_settings_and_no_other(command: str) -> None:
    """The settings section of ``--help``; compare's --tolerance and replay's --model-name
    are arguments of their own, listed above it."""
    text = subcommand(command).format_help()
    _, _, section = text.partition(f"\n{SETTINGS_GROUP}:\n")
    shown = set(re.findall(r"^  (--[a-z][a-z-]*)", section, re.MULTILINE))
    assert shown == flags(COMMAND_SETTINGS[command])


@pytest.mark.parametrize("command", sorted(WAYS))
def test_a_setting_the_command_does_not_read_is_refused_naming_its_help(command: str) -> None:
    positional = {"register-model": ["dir", "--name=M"], "compare": ["a", "b"], "replay": ["d"]}
    own = set(subcommand(command)._option_string_actions)
    for option in OPTIONS:
        if option.name in COMMAND_SETTINGS[command] or option.cli in own:
            continue
        given = option.cli if option.flag else f"{option.cli}=x"
        with pytest.raises(ConfigError) as refused:
            parse_args([command, *positional.get(command, []), given])
        message = str(refused.value)
        assert message.startswith(f"unrecognized arguments: {given}; ")
        assert (
            f"{command} does not read the setting {option.cli} (read by the pytest run" in message
        )
        assert message.endswith(f"see python -m harness {command} --help")


def test_the_refusal_says_which_commands_read_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", "--dry-run", "--model-name=Phi-4"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err == (
        "error: unrecognized arguments: --model-name=Phi-4; sweep does not read the setting "
        "--model-name (read by the pytest run, plan, check, versions, trend); see python -m "
        "harness sweep --help\n"
    )
