"""Foundation models in the local registry: the built-in tiny model, and real checkpoints.

The tiny model is built on first use in a child process (it needs torch; the harness process
stays light) under a workspace lock, so parallel workers build it once. A real checkpoint
(e.g. Phi-3-mini on a GPU box) is registered from its directory by the CLI.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from harness.backends.local import mlflow_model, registry
from harness.backends.local.defaults import (
    DEFAULT_MODEL_NAME,
    FOUNDATION_EXPERIMENT,
    TAG_KIND,
    TAG_RECIPE,
    tiny_model_tags,
)
from harness.backends.local.env import child_env, python
from harness.backends.local.model_dir import check_model_dir
from harness.backends.local.process import log_tail
from harness.backends.local.workspace import Workspace
from harness.errors import HarnessError
from harness.naming import check_model_name
from harness.tags import ModelCard, model_card

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

BUILD_TIMEOUT_S = 900.0
logger = logging.getLogger("harness")


def get_card(ws: Workspace, name: str, version_or_label: str) -> ModelCard:
    """The card of a registered model; the default tiny model is built when missing."""
    if name == DEFAULT_MODEL_NAME and not _current_build(ws):
        build_default(ws)
    return registry.card_of(registry.require_version(ws, name, version_or_label))


def _current_build(ws: Workspace) -> bool:
    """Whether the latest tiny model was built with today's recipe."""
    from harness.backends.local.tiny_model import recipe

    latest = registry.find_version(ws, DEFAULT_MODEL_NAME, "latest")
    return latest is not None and latest.tags.get(TAG_RECIPE) == recipe()


def build_default(ws: Workspace) -> None:
    """Build, pre-train and register the tiny model once per workspace."""
    from harness.backends.local.tiny_model import recipe
    from harness.data import SHIPPED_DATASET

    with ws.lock(f"build-{DEFAULT_MODEL_NAME}"):
        if _current_build(ws):
            return
        run_id, out = _new_run(ws, DEFAULT_MODEL_NAME)
        try:
            _run_builder(ws, Path(SHIPPED_DATASET), out)
        except HarnessError:
            ws.client().set_terminated(run_id, "FAILED")
            raise
        registry.register(ws, DEFAULT_MODEL_NAME, str(out), run_id, tiny_model_tags(recipe()))
        ws.client().set_terminated(run_id, "FINISHED")


def _new_run(ws: Workspace, name: str) -> tuple[str, Path]:
    """An MLflow run holding the model's files, and the model directory inside it."""
    run = ws.client().create_run(
        ws.experiment_id(FOUNDATION_EXPERIMENT), run_name=name, tags={TAG_KIND: "foundation"}
    )
    return run.info.run_id, mlflow_model.local_path(run.info.artifact_uri) / "model"


def _run_builder(ws: Workspace, dataset: Path, out: Path) -> None:
    log = ws.builds / f"{DEFAULT_MODEL_NAME}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        python(),
        "-m",
        "harness.backends.local.tiny_model",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
    ]
    with log.open("wb") as sink:
        code = subprocess.run(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env(),
            timeout=BUILD_TIMEOUT_S,
            check=False,
        ).returncode
    if code != 0:
        raise HarnessError(
            f"building the default model {DEFAULT_MODEL_NAME} from {dataset} failed (exit code "
            f"{code}); expected an MLflow model at {out}; log {log}:\n{log_tail(log)}\n"
            "fix the cause above (is the shipped dataset complete?) and run again"
        )


def register_directory(
    ws: Workspace, source: Path, name: str, tags: Mapping[str, str]
) -> ModelVersion:
    """Register a Hugging Face checkpoint directory as a new version of ``name``.

    Everything is checked before the first write; a failure after it (Ctrl-C included) leaves
    no run and no copied files.
    """
    check_model_name(name, "--name")
    source = check_model_dir(source)
    model_card(name, "new", registry.model_id(name, "new"), tags)  # malformed tags fail here
    with model_run(ws, name) as (run_id, out):
        try:
            mlflow_model.save_directory(source, out)
        except Exception as exc:  # re-raised with the directory named
            raise HarnessError(
                f"saving {source} as an MLflow model failed ({type(exc).__name__}: {exc}); check"
                " that transformers can load the directory (AutoConfig/AutoTokenizer) and try again"
            ) from exc
        return registry.register(ws, name, str(out), run_id, {**tags, TAG_KIND: "foundation"})


@contextlib.contextmanager
def model_run(ws: Workspace, name: str) -> Iterator[tuple[str, Path]]:
    """An MLflow run to hold a model's files: FINISHED when the body returns; on any failure
    (Ctrl-C included) marked FAILED and deleted with its files, so nothing is left RUNNING."""
    run_id, out = _new_run(ws, name)
    try:
        yield run_id, out
    except BaseException:
        _discard_run(ws, run_id)
        raise
    ws.client().set_terminated(run_id, "FINISHED")


def _discard_run(ws: Workspace, run_id: str) -> None:
    """Best effort: a cleanup failure is logged, never raised over the error that caused it."""
    client = ws.client()
    try:
        run_dir = mlflow_model.local_path(client.get_run(run_id).info.artifact_uri).parent
        if run_dir.name == run_id and run_dir.is_relative_to(ws.root):
            shutil.rmtree(run_dir, ignore_errors=True)
        client.set_terminated(run_id, "FAILED")
        client.delete_run(run_id)
    except Exception as exc:  # the original failure matters more
        logger.warning(
            "could not clean up MLflow run %s of a failed registration (%s: %s); its files may "
            "remain under %s", run_id, type(exc).__name__, exc, ws.artifacts)
