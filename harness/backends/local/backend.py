"""``LocalBackend``: the workflow's steps for real on this machine.

Constructing it is cheap (no torch, no MLflow import); each step loads what it needs. Every
process it starts (fine-tune jobs, inference servers) runs in its own process group and is
stopped by ``close()``, which also runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from harness.backends.base import (
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    OwnedResource,
    RegisteredModel,
    ScoringReply,
    TrainingMetrics,
)
from harness.backends.local import (
    compute,
    deployment,
    endpoints,
    foundation,
    invoke,
    registry,
    sweep,
)
from harness.backends.local.defaults import FINETUNED_SUFFIX, TAG_JOB_NAME
from harness.backends.local.job import Jobs
from harness.backends.local.process import DEFAULT_GRACE_S
from harness.backends.local.settings import resolve
from harness.backends.local.workspace import Workspace
from harness.config import HarnessConfig
from harness.data import PreparedData
from harness.errors import CleanupError, DataError, HarnessError, JobError
from harness.finetune import load_component_inputs
from harness.tags import ModelCard


def training_files(data: PreparedData) -> tuple[str, str]:
    """The train_sft and test_sft JSON Lines files, checked before the job starts."""
    files = [data.files.get(split, "") for split in ("train_sft", "test_sft")]
    missing = [
        f"{split} ({path or 'not prepared'})"
        for split, path in zip(("train_sft", "test_sft"), files, strict=True)
        if not Path(path).is_file()
    ]
    if missing:
        raise DataError(
            f"prepared data in {data.directory} lacks {', '.join(missing)}; expected the JSON "
            "Lines files written by harness.data.prepare; prepare the data again"
        )
    return files[0], files[1]


class LocalBackend:
    name = "local"

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self.ws = Workspace.at(config.workspace_dir)
        self.jobs = Jobs(self.ws)
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.delete_timeout_s = DEFAULT_GRACE_S  # a server's grace between SIGTERM and SIGKILL
        atexit.register(self.close)

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard:
        return foundation.get_card(self.ws, name, version_or_label)

    def component_inputs(self) -> Mapping[str, Mapping[str, Any]]:
        return load_component_inputs()

    def ensure_compute(
        self, card: ModelCard, name: str, sku: str | None, tags: Mapping[str, str]
    ) -> Compute:
        return compute.local_compute(card, name, sku)

    def submit_finetune(
        self,
        card: ModelCard,
        compute_: Compute,
        data: PreparedData,
        parameters: Mapping[str, Any],
        display_name: str,
        tags: Mapping[str, str],
    ) -> JobRun:
        resolve(parameters)  # a bad value fails here, before a process starts
        train, test = training_files(data)
        version = registry.require_version(self.ws, card.name, card.version)
        inputs = {
            "model_dir": str(registry.version_dir(version)),
            "train_file": train,
            "test_file": test,
            "device": compute.training_device(compute_),
            "parameters": dict(parameters),
        }
        return self.jobs.submit(inputs, display_name, self.config.experiment_name, tags)

    def wait_for_job(self, job: JobRun, timeout_s: float) -> JobRun:
        return self.jobs.wait(job, timeout_s)

    def cancel_job(self, job: JobRun) -> None:
        self.jobs.cancel(job.name)

    def delete_job(self, job: JobRun) -> None:
        """Cancel it if it runs, then delete its run and directory (a real model's merged
        weights are gigabytes: a nightly run must not leave them behind)."""
        sweep.delete_job(self.ws, self.jobs, job.name)

    def job_metrics(self, job: JobRun) -> TrainingMetrics:
        return self.jobs.metrics(job)

    def register_model(
        self, card: ModelCard, job: JobRun, tags: Mapping[str, str]
    ) -> RegisteredModel:
        current = self.jobs.get(job.name)
        output = Path(self.jobs.spec(job.name).output_dir)
        if current.status != "Completed" or not (output / "MLmodel").is_file():
            raise JobError(
                f"job {job.name} has no model to register (status {current.status}, "
                f"expected Completed with an MLflow model at {output}); log {current.url}"
            )
        name = f"{card.name}{FINETUNED_SUFFIX}"
        version = registry.register(
            self.ws, name, str(output), job.name, {**tags, TAG_JOB_NAME: job.name}
        )
        return RegisteredModel(
            name=name,
            version=str(version.version),
            id=registry.model_id(name, version.version),
            job_name=job.name,
            tags=dict(version.tags),
        )

    def begin_create_endpoint(
        self, name: str, tags: Mapping[str, str]
    ) -> endpoints.LocalEndpointPoller:
        return endpoints.LocalEndpointPoller(endpoints.create(self.ws, name, tags).handle())

    def deploy(
        self,
        endpoint: Endpoint,
        model: RegisteredModel,
        name: str,
        instance_type: str,
        tags: Mapping[str, str],
        timeout_s: float,
    ) -> Deployment:
        device = compute.serving_device(instance_type)
        version = registry.require_version(self.ws, model.name, model.version)
        fields = {
            "name": name,
            "model_id": model.id,
            "instance_type": instance_type,
            "tags": dict(tags),
        }
        handle, proc = deployment.start(
            self.ws, endpoint.name, registry.version_dir(version), fields, device, timeout_s
        )
        self.servers[endpoint.name] = proc
        return handle

    def get_endpoint(self, name: str) -> Endpoint:
        return endpoints.require(self.ws, name).handle()

    def endpoint_key(self, endpoint: Endpoint) -> str:
        """The endpoint's primary key, for ``invoke_raw``."""
        return endpoints.require(self.ws, endpoint.name).keys[0]

    def invoke(
        self, endpoint: Endpoint, deployment_: Deployment, request: Mapping[str, Any]
    ) -> ScoringReply:
        key = self.endpoint_key(endpoint)
        return invoke.post(endpoint.scoring_uri, request, key, self.config.scoring_timeout_s)

    def invoke_raw(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: str | None
    ) -> ScoringReply:
        return invoke.post(endpoint.scoring_uri, request, key, self.config.scoring_timeout_s)

    def delete_endpoint(self, name: str) -> None:
        deployment.delete(self.ws, name, self.delete_timeout_s)
        proc = self.servers.pop(name, None)
        if proc is not None:
            proc.wait()

    def delete_model(self, model: RegisteredModel) -> None:
        registry.delete_version(self.ws, model.name, model.version)

    def delete_compute(self, compute_: Compute) -> None:
        """Nothing to delete: the compute is this machine."""

    def list_owned_resources(self) -> Sequence[OwnedResource]:
        return sweep.owned(self.ws)

    def delete_resource(self, resource: OwnedResource) -> None:
        sweep.delete(self.ws, self.jobs, resource)
        if resource.kind == "endpoint" and resource.name in self.servers:
            self.servers.pop(resource.name).wait()

    def close(self) -> None:
        """Stop every job and server this instance started (idempotent).

        Two cases leave them to whoever deletes them later: a pytest-xdist worker (the
        coordinating process deletes the shared resources once every worker is done, and another
        worker may still be scoring) and ``--keep-resources`` (kept for debugging; tagged, so
        the sweep finds them).
        """
        if self.config.keep_resources or os.environ.get("PYTEST_XDIST_WORKER"):
            return
        problems = []
        stops: list[Callable[[], None]] = [self.jobs.close]
        stops += [partial(self.delete_endpoint, name) for name in list(self.servers)]
        for stop in stops:
            try:
                stop()
            except HarnessError as exc:  # keep stopping the rest; reported together below
                problems.append(str(exc))
        if problems:
            raise CleanupError(
                "stopping what the local backend started failed: "
                + "; ".join(problems)
                + "; run `python -m harness sweep`"
            )
