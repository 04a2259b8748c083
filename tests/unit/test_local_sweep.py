"""What the sweep deletes of a killed run's fine-tune job and registered model: every file.

A killed run leaves its job (an MLflow run with a directory of artifacts) and the model
registered from it (whose files lie inside that run's directory). Whatever order they are
deleted in, the run's directory ``artifacts/<experiment>/<run id>`` goes too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.base import ResourceKind
from harness.backends.local import registry, sweep
from harness.backends.local.jobs import Jobs
from harness.backends.local.mlflow_model import local_path
from harness.backends.local.registry import TAG_KIND
from harness.backends.local.workspace import Workspace
from harness.naming import ownership_tags


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.at(tmp_path_factory.mktemp("sweep") / "workspace")


def killed_run(ws: Workspace, run_id: str) -> tuple[str, Path]:
    """A job's MLflow run with its model output, and a version registered from it."""
    tags = {**ownership_tags(run_id, 1.0), TAG_KIND: "job"}
    client = ws.client()
    run = client.create_run(ws.experiment_id("chat_completion_tiny"), tags=tags)
    model = local_path(run.info.artifact_uri) / "model"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    registry.register(ws, "tiny-ultrachat-200k", str(model), run.info.run_id, tags)
    return run.info.run_id, model.parent.parent


def test_the_sweep_lists_a_model_before_the_job_it_came_from(ws: Workspace) -> None:
    job, _ = killed_run(ws, "hsweep0001")
    kinds = [
        (r.kind, r.name) for r in sweep.owned(ws) if r.tags.get("harness-run-id") == "hsweep0001"
    ]
    assert [k for k, _ in kinds] == [ResourceKind.MODEL, ResourceKind.JOB]
    for kind, name in kinds:
        if kind == ResourceKind.MODEL:
            registry.delete_version(ws, *name.rsplit(":", 1))
        else:
            Jobs(ws).delete(name, grace_s=0.1)
    assert not (ws.artifacts / "chat_completion_tiny" / job).exists()


def test_a_job_deleted_before_its_model_leaves_no_directory_either(ws: Workspace) -> None:
    job, run_dir = killed_run(ws, "hsweep0002")
    Jobs(ws).delete(job, grace_s=0.1)
    assert run_dir.is_dir()  # the registered model still uses it
    version = registry.find_version(ws, "tiny-ultrachat-200k", "latest")
    assert version is not None
    registry.delete_version(ws, "tiny-ultrachat-200k", str(version.version))
    assert not run_dir.exists()
