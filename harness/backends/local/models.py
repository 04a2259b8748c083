"""Models in the local registry: the foundation model (the built-in tiny model, or a
registered checkpoint) and the fine-tuned model a job produced.

The tiny model is built in a child process (it needs torch; the harness process stays light)
once per machine and recipe into the model cache (``model_cache``), and copied from there into
each workspace on first use, under a workspace lock so that parallel workers register it once.
The registration's MLflow run carries the run's ownership tags until the model is registered:
one that is interrupted is ended at once, and one whose harness was killed is found by the
sweep.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from harness.backends.base import JobRun, RegisteredModel, RegistryVersion, finetuned_model_name
from harness.backends.local import mlflow_model, registry
from harness.backends.local.compute import LOCAL_SKUS
from harness.backends.local.job_files import MLFLOW_END
from harness.backends.local.model_cache import ModelCache, recipe
from harness.backends.local.processes import (
    child_env,
    die_with_parent,
    log_tail,
    python,
    scratch_env,
)
from harness.backends.local.registry import TAG_JOB_NAME, TAG_KIND, TAG_RECIPE
from harness.backends.local.workspace import Workspace
from harness.errors import HarnessError, JobError
from harness.model_card import ModelCard, encode_tag
from harness.waiting import Deadline, Heartbeat, short_duration

logger = logging.getLogger("harness")
DEFAULT_MODEL_NAME = "Phi-3-tiny-ultrachat"
FOUNDATION_EXPERIMENT = "harness-foundation-models"
BUILD_TIMEOUT_S = 900.0
BUILD_HEARTBEAT_S = 10.0  # about 20 s of building on two cores: say so twice
BUILD_POLL_S = 0.2


def tiny_model_tags(recipe: str = "") -> dict[str, str]:
    """The tiny model's tags, in the registry's string format."""
    from harness.backends.local.training.tiny_model import TINY_MODEL_DEFAULTS

    return {
        TAG_RECIPE: recipe,
        "finetune_compute_allow_list": encode_tag(list(LOCAL_SKUS)),
        "inference_compute_allow_list": encode_tag(list(LOCAL_SKUS)),
        "model_specific_defaults": encode_tag(TINY_MODEL_DEFAULTS),
        "task": "chat-completion",
        TAG_KIND: "foundation",
    }


def get_foundation_model(
    ws: Workspace, cache: ModelCache, name: str, version_or_label: str, tags: Mapping[str, str]
) -> ModelCard:
    """The card of a registered model; the default tiny model is registered when missing
    (``tags``: the ownership tags its MLflow run carries until it is registered)."""
    if name == DEFAULT_MODEL_NAME and not _current_build(ws):
        build_default(ws, cache, tags)
    return registry.card_of(registry.require_version(ws, name, version_or_label))


def default_recipe_key() -> str:
    """The recipe key of the default model built from the shipped data with these libraries."""
    from harness.data import SHIPPED_DATASET

    return recipe(Path(SHIPPED_DATASET)).key


def _current_build(ws: Workspace) -> bool:
    """Whether the latest tiny model was built with today's recipe."""
    latest = registry.find_version(ws, DEFAULT_MODEL_NAME, "latest")
    return latest is not None and latest.tags.get(TAG_RECIPE) == default_recipe_key()


def build_default(ws: Workspace, cache: ModelCache, tags: Mapping[str, str]) -> None:
    """Register the tiny model once per workspace, from the machine's cache (built there
    first when the cache has no build of today's recipe)."""
    from harness.data import SHIPPED_DATASET

    dataset = Path(SHIPPED_DATASET)
    with ws.lock(f"build-{DEFAULT_MODEL_NAME}"):
        if _current_build(ws):
            return
        run_id, out = new_run(ws, DEFAULT_MODEL_NAME, tags)
        try:
            reused = cache.provide(
                DEFAULT_MODEL_NAME, recipe(dataset), out, lambda to: _build(ws, cache, dataset, to)
            )
        except BaseException as exc:  # Ctrl-C and SIGTERM too: never a run RUNNING forever
            ended = MLFLOW_END["Failed" if isinstance(exc, Exception) else "Canceled"]
            ws.client().set_terminated(run_id, ended)
            raise
        if reused:
            logger.info(
                "default model %s: this machine's build %s (cache key %s) copied into workspace %s",
                DEFAULT_MODEL_NAME,
                cache.entry(DEFAULT_MODEL_NAME, recipe(dataset).key),
                recipe(dataset).key,
                ws.root,
            )
        tiny_tags = tiny_model_tags(recipe(dataset).key)
        registry.register(ws, DEFAULT_MODEL_NAME, str(out), run_id, tiny_tags)
        for tag in tags:  # registered: the sweep must never take this run's files away
            ws.client().delete_tag(run_id, tag)
        ws.client().set_terminated(run_id, MLFLOW_END["Completed"])


def new_run(ws: Workspace, name: str, tags: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """An MLflow run holding the model's files, and the model directory inside it."""
    run = ws.client().create_run(
        ws.experiment_id(FOUNDATION_EXPERIMENT),
        run_name=name,
        tags={**(tags or {}), TAG_KIND: "foundation"},
    )
    return run.info.run_id, mlflow_model.local_path(run.info.artifact_uri) / "model"


@contextlib.contextmanager
def model_run(ws: Workspace, name: str) -> Iterator[tuple[str, Path]]:
    """An MLflow run to hold a model's files: FINISHED when the body returns; on any failure
    (Ctrl-C included) marked FAILED and deleted with its files, so nothing is left RUNNING."""
    run_id, out = new_run(ws, name)
    try:
        yield run_id, out
    except BaseException:
        _discard_run(ws, run_id)
        raise
    ws.client().set_terminated(run_id, MLFLOW_END["Completed"])


def _discard_run(ws: Workspace, run_id: str) -> None:
    """Best effort: a cleanup failure is logged, never raised over the error that caused it."""
    client = ws.client()
    try:
        run_dir = mlflow_model.local_path(client.get_run(run_id).info.artifact_uri).parent
        if run_dir.name == run_id and run_dir.is_relative_to(ws.root):
            shutil.rmtree(run_dir, ignore_errors=True)
        client.set_terminated(run_id, MLFLOW_END["Failed"])
        client.delete_run(run_id)
    except Exception as exc:  # the original failure matters more
        logger.warning(
            "could not clean up MLflow run %s of a failed registration (%s: %s); its files may "
            "remain under %s",
            run_id,
            type(exc).__name__,
            exc,
            ws.artifacts,
        )


def _build(ws: Workspace, cache: ModelCache, dataset: Path, out: Path) -> None:
    key = recipe(dataset).key
    logger.info(
        "building the default model %s once for this machine into %s (cache key %s; about 30 s "
        "on two cores, deadline %s; log %s)",
        DEFAULT_MODEL_NAME,
        cache.root,
        key,
        short_duration(BUILD_TIMEOUT_S),
        _build_log(ws),
    )
    _run_builder(ws, dataset, out)


def _build_log(ws: Workspace) -> Path:
    return ws.builds / f"{DEFAULT_MODEL_NAME}.log"


def _run_builder(ws: Workspace, dataset: Path, out: Path) -> None:
    log = _build_log(ws)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        python(),
        "-m",
        "harness.backends.local.training.tiny_model",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
    ]
    scratch = out.parent / "tmp"  # in the build's own scratch: the cache (or its sweep) takes it
    try:
        with log.open("wb") as sink:
            builder = subprocess.Popen(
                argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=child_env(scratch_env(scratch, ws.caches)),
                preexec_fn=die_with_parent,
            )
            try:
                code = _wait_for_build(builder, log)
            finally:
                if builder.poll() is None:  # Ctrl-C, or past the deadline
                    builder.kill()
                    builder.wait()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if code is None:
        raise HarnessError(
            f"building the default model {DEFAULT_MODEL_NAME} did not finish within "
            f"{short_duration(BUILD_TIMEOUT_S)} (about 30 s on two quiet cores: is the machine "
            f"overloaded?); log {log}:\n{log_tail(log)}\nrun again when the machine is less busy, "
            "or pass --model-cache with a directory that holds a build"
        )
    if code != 0:
        raise HarnessError(
            f"building the default model {DEFAULT_MODEL_NAME} from {dataset} failed (exit code "
            f"{code}); expected an MLflow model at {out}; log {log}:\n{log_tail(log)}\n"
            "fix the cause above (is the shipped dataset complete?) and run again"
        )


def _wait_for_build(builder: subprocess.Popen[bytes], log: Path) -> int | None:
    """The builder's exit code (None past the deadline), with a heartbeat meanwhile: the
    first run on a fresh workspace spends most of its first minute here."""
    deadline = Deadline(BUILD_TIMEOUT_S)
    heartbeat = Heartbeat(
        f"default model {DEFAULT_MODEL_NAME}", deadline, f"log {log}", every_s=BUILD_HEARTBEAT_S
    )

    def ended() -> bool:
        heartbeat.beat("building")
        return builder.poll() is not None

    return builder.returncode if deadline.until(ended, BUILD_POLL_S) else None


def list_versions(ws: Workspace, name: str) -> list[RegistryVersion]:
    """Every registered version of ``name`` (a local registry archives nothing)."""
    return [RegistryVersion(str(v.version)) for v in registry.versions_of(ws, name)]


def register_model(
    ws: Workspace, card: ModelCard, job: JobRun, output: Path, tags: Mapping[str, str]
) -> RegisteredModel:
    """The job's MLflow model output as a new version of ``{model}-ultrachat-200k``."""
    if job.status != "Completed" or not (output / "MLmodel").is_file():
        raise JobError(
            f"job {job.name} has no model to register (status {job.status}, expected "
            f"Completed with an MLflow model at {output}); log {job.url}"
        )
    name = finetuned_model_name(card.name)
    version = registry.register(ws, name, str(output), job.name, {**tags, TAG_JOB_NAME: job.name})
    return RegisteredModel(
        name=name,
        version=str(version.version),
        id=registry.model_id(name, version.version),
        job_name=str(version.run_id),  # lineage as the registry recorded it
        tags=dict(version.tags),
    )


def delete_model(ws: Workspace, ref: str) -> None:
    name, _, version = ref.rpartition(":")
    registry.delete_version(ws, name, version)
