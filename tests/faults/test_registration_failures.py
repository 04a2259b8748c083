"""Registration against a real MLflow registry: a failure leaves nothing behind.

Failures are injected where they happen for real: in the copy (a checkpoint transformers cannot
load, Ctrl-C) and in the registry (a model version that cannot be created). Creating MLflow's
database takes seconds, too slow for the unit suite: these run with the fault tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.backends.local import checkpoints, mlflow_model, registry
from harness.backends.local.workspace import Workspace
from harness.errors import HarnessError


def complete_model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One real MLflow workspace for the module (creating the database takes a second)."""
    ws = Workspace.at(tmp_path_factory.mktemp("registration") / "ws")
    ws.client()
    return ws


def leftovers(ws: Workspace, name: str) -> dict[str, Any]:
    """What a registration of ``name`` left: live runs, their statuses, files, models."""
    from mlflow.entities import ViewType

    client = ws.client()
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(ids, run_view_type=ViewType.ALL) if ids else []
    mine = [r for r in runs if r.info.run_name == name]
    return {
        "live runs": [r.info.status for r in mine if r.info.lifecycle_stage == "active"],
        "running": [r.info.run_id for r in mine if r.info.status == "RUNNING"],
        "files": [
            str(p)
            for r in mine
            for p in mlflow_model.local_path(r.info.artifact_uri).parent.rglob("*")
        ],
        "models": [m.name for m in client.search_registered_models(registry.name_filter(name))],
    }


def copy_then(failure: BaseException | None) -> Any:
    """A save that writes a few files (the copy) and then fails with ``failure``."""

    def save(source: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "MLmodel").write_text("flavors: {transformers: {model_binary: model}}\n")
        (out / "model.safetensors").write_bytes(b"\0" * 4096)
        if failure is not None:
            raise failure

    return save


@pytest.mark.parametrize("failure", [RuntimeError("unloadable checkpoint"), KeyboardInterrupt()])
def test_a_failed_copy_leaves_no_run_and_no_files(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    name = f"copy-fails-{type(failure).__name__}"
    monkeypatch.setattr(mlflow_model, "save_directory", copy_then(failure))
    with pytest.raises((HarnessError, KeyboardInterrupt)):
        checkpoints.register_directory(
            workspace, complete_model_dir(tmp_path), name, checkpoints.DEFAULT_TAGS
        )
    assert leftovers(workspace, name) == {"live runs": [], "running": [], "files": [], "models": []}


def test_a_failed_version_leaves_no_run_no_files_and_no_model(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(mlflow_model, "save_directory", copy_then(None))
    monkeypatch.setattr(MlflowClient, "create_model_version", refuse)
    with pytest.raises(RuntimeError, match="registry unavailable"):
        checkpoints.register_directory(
            workspace, complete_model_dir(tmp_path), "version-fails", checkpoints.DEFAULT_TAGS
        )
    assert leftovers(workspace, "version-fails") == {
        "live runs": [],
        "running": [],
        "files": [],
        "models": [],
    }


def test_a_registration_that_succeeds_finishes_its_run(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlflow_model, "save_directory", copy_then(None))
    version = checkpoints.register_directory(
        workspace, complete_model_dir(tmp_path), "ok.v1", checkpoints.DEFAULT_TAGS
    )
    found = leftovers(workspace, "ok.v1")
    assert found["live runs"] == ["FINISHED"] and found["models"] == ["ok.v1"]
    assert registry.require_version(workspace, "ok.v1", "latest").version == version.version


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "back\\slash"])
def test_a_model_named_with_quotes_is_found_in_the_registry(
    workspace: Workspace, name: str
) -> None:
    client = workspace.client()
    client.create_registered_model(name)
    client.create_model_version(name, source=str(workspace.root / "nowhere"))
    assert registry.require_version(workspace, name, "latest").name == name
