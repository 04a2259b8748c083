"""The tiny model's build: an interrupted or killed build leaves nothing that no sweep finds,
and a machine builds it once for all its workspaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.backends.local import models, registry
from harness.backends.local.model_cache import ModelCache
from harness.backends.local.processes import PROJECT_ROOT, pid_alive
from harness.backends.local.workspace import Workspace
from harness.errors import HarnessError
from harness.naming import ownership_tags


class RunsClient:
    """The part of MlflowClient the build uses, recording runs and how they end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tags: dict[str, dict[str, str]] = {}
        self.ended: dict[str, str] = {}

    def get_experiment_by_name(self, name: str) -> Any:
        return type("Experiment", (), {"experiment_id": "1"})()

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> Any:
        run_id = f"run{len(self.tags) + 1}"
        self.tags[run_id] = dict(tags)
        uri = (self.root / run_id / "artifacts").as_uri()
        return type(
            "Run", (), {"info": type("Info", (), {"run_id": run_id, "artifact_uri": uri})()}
        )()

    def set_terminated(self, run_id: str, status: str) -> None:
        self.ended[run_id] = status

    def delete_tag(self, run_id: str, key: str) -> None:
        del self.tags[run_id][key]


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunsClient:
    runs = RunsClient(tmp_path)
    monkeypatch.setattr(Workspace, "client", lambda self: runs)
    monkeypatch.setattr(models, "_current_build", lambda ws: False)
    return runs


@pytest.mark.parametrize(
    "raised, ended", [(KeyboardInterrupt(), "KILLED"), (HarnessError("build failed"), "FAILED")]
)
def test_an_interrupted_or_failed_build_ends_its_run(
    tmp_path: Path,
    client: RunsClient,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    ended: str,
) -> None:
    def builder(ws: Workspace, dataset: Path, out: Path) -> None:
        raise raised

    monkeypatch.setattr(models, "_run_builder", builder)
    tags = ownership_tags("run1", 1.0)
    with pytest.raises(type(raised)):
        models.build_default(Workspace.at(tmp_path), ModelCache(tmp_path / "cache"), tags)
    assert client.ended == {"run1": ended}
    assert tags.items() <= client.tags["run1"].items()  # the sweep finds and deletes it


def test_a_registered_build_loses_its_ownership_tags(
    tmp_path: Path, client: RunsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its files are the foundation model's: the sweep must never delete that run."""
    monkeypatch.setattr(models, "_run_builder", lambda ws, dataset, out: write_model(out))
    monkeypatch.setattr(registry, "register", lambda *args: None)
    models.build_default(
        Workspace.at(tmp_path), ModelCache(tmp_path / "cache"), ownership_tags("run1", 1.0)
    )
    assert client.ended == {"run1": "FINISHED"}
    assert client.tags["run1"] == {"harness-kind": "foundation"}


def write_model(out: Path) -> None:
    (out / "model").mkdir(parents=True)
    (out / "MLmodel").write_text("flavors: {transformers: {model_binary: model}}\n")
    (out / "model" / "model.safetensors").write_bytes(b"weights")


def test_a_machine_builds_the_default_model_once_for_all_its_workspaces(
    tmp_path: Path, client: RunsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second workspace registers a copy of the first one's build, with the same bytes
    and the same recipe tag, without running the builder."""
    built: list[Path] = []
    registered: list[tuple[str, dict[str, str]]] = []

    def builder(ws: Workspace, dataset: Path, out: Path) -> None:
        built.append(out)
        write_model(out)

    def register(ws: Workspace, name: str, source: str, run_id: str, tags: dict[str, str]) -> None:
        registered.append((source, tags))

    monkeypatch.setattr(models, "_run_builder", builder)
    monkeypatch.setattr(registry, "register", register)
    cache = ModelCache(tmp_path / "cache")
    for ws in ("ws1", "ws2"):
        models.build_default(Workspace.at(tmp_path / ws), cache, ownership_tags("run1", 1.0))
    assert len(built) == 1 and built[0].is_relative_to(cache.root)
    (first, first_tags), (second, second_tags) = registered
    assert first != second
    for source in (first, second):
        assert (Path(source) / "model" / "model.safetensors").read_bytes() == b"weights"
        assert not Path(source).is_relative_to(cache.root)  # the workspace owns its copy
    assert first_tags == second_tags
    assert first_tags["harness-recipe"] == models.default_recipe_key()


def test_a_build_past_its_deadline_is_a_harness_error_naming_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder is started for real and stopped at its (here tiny) deadline."""
    monkeypatch.setattr(models, "BUILD_TIMEOUT_S", 0.2)
    ws = Workspace.at(tmp_path)
    with pytest.raises(HarnessError, match="did not finish within") as err:
        models._run_builder(ws, tmp_path / "data", tmp_path / "out")
    assert str(models._build_log(ws)) in str(err.value)


def test_a_build_process_dies_with_the_harness(tmp_path: Path) -> None:
    """SIGKILL of the harness during a build leaves no builder running on."""
    code = (
        "import subprocess, sys; from harness.backends.local.processes import "
        "die_with_parent; p = subprocess.Popen(['sleep', '30'], "
        "preexec_fn=die_with_parent); print(p.pid, flush=True); p.wait()"
    )
    harness = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert harness.stdout is not None
    builder = int(harness.stdout.readline())
    assert pid_alive(builder)
    harness.send_signal(signal.SIGKILL)
    harness.wait()
    deadline = time.monotonic() + 5
    while pid_alive(builder) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(builder)


def test_the_default_models_build_says_it_is_building_until_it_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(models, "BUILD_HEARTBEAT_S", 0.1)
    builder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    with caplog.at_level("INFO", logger="harness"):
        assert models._wait_for_build(builder, tmp_path / "build.log") == 0
    beats = [r.getMessage() for r in caplog.records if "building" in r.getMessage()]
    assert len(beats) >= 2
    assert beats[0].startswith(f"default model {models.DEFAULT_MODEL_NAME} building, 0s of 15m")
    assert beats[0].endswith(f"log {tmp_path / 'build.log'}")
