"""The local workspace's first use: parallel workers must not race on the database migration."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from harness.backends.local.workspace import Workspace, check_workspace
from harness.config import resolve
from harness.errors import ConfigError


class MigratingClient:
    """Stands in for MlflowClient, whose constructor creates and migrates the database."""

    building = 0
    overlapped = False
    guard = threading.Lock()

    def __init__(self, tracking_uri: str, registry_uri: str) -> None:
        with MigratingClient.guard:
            MigratingClient.building += 1
            MigratingClient.overlapped |= MigratingClient.building > 1
        time.sleep(0.2)  # MLflow's migration takes seconds
        with MigratingClient.guard:
            MigratingClient.building -= 1

    def search_experiments(self, **kwargs: Any) -> list[Any]:
        return []

    def search_registered_models(self, **kwargs: Any) -> list[Any]:
        return []


def test_two_workers_on_a_fresh_workspace_migrate_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("mlflow.tracking")
    fake.MlflowClient = MigratingClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow.tracking", fake)
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    ws = Workspace.at(tmp_path)
    workers = [threading.Thread(target=lambda: ws.client()) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not MigratingClient.overlapped
    assert (tmp_path / ".mlflow-initialised").exists()


# --- the local workspace: refused at start-up when it cannot be a writable directory -------

NO_PROC = not Path("/proc/self").is_dir()


def unusable_workspaces(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    return {
        "file": (afile, "is a file"),
        "under a file": (afile / "ws", "is a file"),
        "unwritable": (Path("/proc/harness-ws"), "not writable"),
    }


@pytest.mark.parametrize("kind", ["file", "under a file", "unwritable"])
@pytest.mark.parametrize("source", ["option", "env"])
def test_an_unusable_workspace_names_where_it_was_set(
    tmp_path: Path, kind: str, source: str
) -> None:
    if kind == "unwritable" and NO_PROC:
        pytest.skip("needs /proc")
    path, problem = unusable_workspaces(tmp_path)[kind]
    cfg = (
        resolve(cli={"workspace_dir": str(path)}, env={})
        if source == "option"
        else resolve(env={"HARNESS_WORKSPACE": str(path)})
    )
    with pytest.raises(ConfigError) as err:
        check_workspace(cfg)
    message = str(err.value)
    assert str(path) in message and problem in message and "--workspace" in message
    assert ("env HARNESS_WORKSPACE" in message) == (source == "env")


@pytest.mark.parametrize("source", ["option", "env"])
def test_an_unusable_model_cache_names_its_option(tmp_path: Path, source: str) -> None:
    path, problem = unusable_workspaces(tmp_path)["under a file"]
    workspace = str(tmp_path / "ws")
    cfg = (
        resolve(cli={"workspace_dir": workspace, "model_cache_dir": str(path)}, env={})
        if source == "option"
        else resolve(cli={"workspace_dir": workspace}, env={"HARNESS_MODEL_CACHE": str(path)})
    )
    with pytest.raises(ConfigError) as err:
        check_workspace(cfg)
    message = str(err.value)
    assert f"the model cache {path} cannot be used" in message and problem in message
    assert "--model-cache" in message and "HARNESS_MODEL_CACHE" in message
    assert ("env HARNESS_MODEL_CACHE" in message) == (source == "env")


def test_the_model_cache_defaults_to_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = resolve(env={})
    assert cfg.model_cache_dir == tmp_path / "llm-finetune-harness" / "models"
    assert cfg.sources["model_cache_dir"] == "default"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_workspace_is_refused(tmp_path: Path) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="not writable"):
        check_workspace(resolve(cli={"workspace_dir": str(read_only / "ws")}, env={}))


def test_a_usable_workspace_passes_and_nothing_is_created(tmp_path: Path) -> None:
    check_workspace(resolve(cli={"workspace_dir": str(tmp_path / "new" / "ws")}, env={}))
    check_workspace(resolve(cli={"workspace_dir": str(tmp_path)}, env={}))
    assert list(tmp_path.iterdir()) == []


def test_the_azure_backend_ignores_the_workspace(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    check_workspace(resolve(cli={"backend": "azure", "workspace_dir": str(afile)}, env={}))
