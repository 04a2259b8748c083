"""The fine-tune pipeline job: component inputs, submission, waiting with a deadline, cancel.

``jobs.stream()`` is not used: it returns normally on Canceled, NotResponding and Paused, so
success is asserted here as the status Completed, polled with ``jobs.get`` against a deadline.
The service's states are followed, not the SDK's: azure-ai-ml's ``JobStatus`` constants call
NotResponding terminal, but the REST enum says a NotResponding run can go back to any earlier
state, so it is waited on, up to a grace period; Unknown is in progress too. Only Completed,
Failed and Canceled end a job (``harness.backends.base.JOB_FINAL``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import is_quota, read_failed, service_message, status_text
from harness.config import BY_NAME
from harness.errors import CleanupError, JobError, ParameterError
from harness.waiting import Deadline, Heartbeat, short_duration, wait_poller

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.azure.metrics import TrainingProgress
    from harness.backends.base import Compute, JobRun
    from harness.data import PreparedData
    from harness.model_card import ModelCard

COMPONENT = "chat_completion_pipeline"
SPEC_KEYS = ("default", "optional", "enum", "min", "max")
COMPUTE_INPUTS = (
    "compute_model_import",
    "compute_preprocess",
    "compute_finetune",
    "compute_model_evaluation",
)
CANCEL_WAIT_S = 60.0
UNSUCCESSFUL = ("Failed", "NotResponding", "Paused", "Canceled")  # most telling first
NOT_RESPONDING = "NotResponding"
MAX_STEPS_SHOWN = 3
MAX_DEPTH = 3  # root -> chat_completion_pipeline (itself a pipeline component) -> its steps
# A run-time quota failure (MicrosoftLearning/mslearn-dp100#35: "Job submission to AzureML
# Compute encountered an Exception with status code JobNodeCountExceedsCoreQuota, ...").
CORE_QUOTA_CODE = "CoreQuota"


def get_component(registry: MLClient, registry_name: str) -> Any:
    from azure.core.exceptions import AzureError

    try:
        return registry.components.get(COMPONENT, label="latest")
    except AzureError as exc:
        raise read_failed(
            exc,
            f"component {COMPONENT} (label latest)",
            f"registry {registry_name}",
            f"check {BY_NAME['azure_component_registry'].cli}",
        ) from None


def component_inputs(component: Any) -> dict[str, dict[str, Any]]:
    """The LIVE component's inputs, in the shape of the shipped reference JSON."""
    inputs: dict[str, dict[str, Any]] = {}
    for name, port in component.inputs.items():
        spec: dict[str, Any] = {"type": str(port.type)}
        for key in SPEC_KEYS:
            value = getattr(port, key, None)
            if value is not None:
                spec[key] = value
        inputs[name] = spec
    return inputs


def build_pipeline(
    component: Any,
    card: ModelCard,
    compute: Compute,
    data: PreparedData,
    parameters: Mapping[str, Any],
    display_name: str,
    tags: Mapping[str, str],
) -> Any:
    """The seed's pipeline; the harness's wiring wins over a parameter of the same name."""
    from azure.ai.ml import Input
    from azure.ai.ml.dsl import pipeline
    from azure.ai.ml.entities import PipelineJobSettings
    from azure.ai.ml.exceptions import MlException

    train, test = data.training_files()
    wiring: dict[str, Any] = {name: compute.name for name in COMPUTE_INPUTS}
    wiring.update(
        mlflow_model_path=card.id,
        number_of_gpu_to_use_finetuning=compute.gpus_per_node,
        train_file_path=Input(type="uri_file", path=train),
        test_file_path=Input(type="uri_file", path=test),
    )
    inputs = {**parameters, **wiring}

    def finetune() -> dict[str, Any]:
        chat_completion_pipeline = component(**inputs)
        return {"trained_model": chat_completion_pipeline.outputs.mlflow_model_folder}

    try:
        job = pipeline(finetune, name=display_name)()
    except MlException as exc:
        raise ParameterError(
            f"{COMPONENT} {component.version} rejected the fine-tune parameters: "
            f"{service_message(exc)}; fix or drop the parameter with "
            f"{BY_NAME['finetune_params'].cli}"
        ) from None
    job.display_name, job.tags = display_name, dict(tags)
    settings = job.settings or PipelineJobSettings()
    settings.force_rerun, settings.continue_on_step_failure = True, False
    job.settings = settings
    return job


def submit(workspace: MLClient, job: Any, experiment: str) -> JobRun:
    """Uploads the local JSON Lines files (the SDK does it on create) and submits."""
    from azure.core.exceptions import AzureError

    try:
        made = workspace.jobs.create_or_update(job, experiment_name=experiment)
    except AzureError as exc:
        raise JobError(
            f"fine-tune pipeline {job.display_name} could not be submitted to experiment "
            f"{experiment}: {service_message(exc)}; check the inputs and the workspace quota"
        ) from None
    return handle(made, experiment)


def handle(job: Any, experiment: str) -> JobRun:
    from harness.backends.base import JobRun

    return JobRun(
        name=str(job.name),
        display_name=str(job.display_name or job.name),
        status=status_text(job.status),
        url=str(job.studio_url or ""),
        experiment=experiment or str(getattr(job, "experiment_name", "") or ""),
    )


def get_job(workspace: MLClient, name: str) -> JobRun:
    return handle(_get(workspace, name), "")


def _get(workspace: MLClient, name: str) -> Any:
    from azure.core.exceptions import AzureError

    try:
        return workspace.jobs.get(name)
    except AzureError as exc:
        raise read_failed(
            exc, f"fine-tune job {name}", "the workspace", "check the workspace settings", JobError
        ) from None


def wait_for_job(
    workspace: MLClient,
    job: JobRun,
    timeout_s: float,
    poll_interval_s: float,
    not_responding_grace_s: float,
    progress: TrainingProgress | None = None,
) -> JobRun:
    """Poll until Completed, Failed or Canceled; cancel the job at the deadline, or when it
    stays NotResponding longer than the grace period; only Completed passes. ``progress``
    says the training's steps meanwhile."""
    from harness.backends.base import JOB_FINAL

    deadline = Deadline(timeout_s)
    heartbeat = Heartbeat(f"fine-tune job {job.name}", deadline, job.url)
    silent_since: float | None = None
    current = _get(workspace, job.name)
    while (status := status_text(current.status)) not in JOB_FINAL:
        heartbeat.beat(status)
        if progress is not None:
            progress.say()
        silent_since = (silent_since or time.monotonic()) if status == NOT_RESPONDING else None
        if silent_since is not None and time.monotonic() - silent_since > not_responding_grace_s:
            _cancel_not_responding(
                workspace, job, time.monotonic() - silent_since, not_responding_grace_s
            )
        if deadline.expired:
            _cancel_at_deadline(workspace, job, timeout_s, status)
        deadline.sleep(poll_interval_s)
        current = _get(workspace, job.name)
    if progress is not None:
        progress.say(final=True)  # the points logged since the last poll
    heartbeat.beat(status)
    done = dataclasses.replace(job, status=status, url=str(current.studio_url or job.url))
    if status != "Completed":
        raise JobError(
            f"fine-tune job {job.name} ({job.display_name}) ended {status}, expected "
            f"Completed: {failure_detail(workspace, job.name)}; see {done.url}"
        )
    return done


def _cancel_saying(workspace: MLClient, name: str, when: str) -> str:
    """Cancel the job; how that went, for the error that follows."""
    try:
        cancel(workspace, name)
    except CleanupError as exc:
        return f"cancelling it{when} failed ({exc})"
    return f"it was cancelled{when}"


def _cancel_not_responding(
    workspace: MLClient, job: JobRun, silent_s: float, grace_s: float
) -> None:
    outcome = _cancel_saying(workspace, job.name, "")
    raise JobError(
        f"fine-tune job {job.name} has been {NOT_RESPONDING} for {short_duration(silent_s)}, "
        f"longer than the grace period of {short_duration(grace_s)}; {outcome}; its nodes stopped "
        f"reporting: see {job.url}, or raise {BY_NAME['job_not_responding_grace_s'].cli}"
    )


def _cancel_at_deadline(workspace: MLClient, job: JobRun, timeout_s: float, status: str) -> None:
    outcome = _cancel_saying(workspace, job.name, " at the deadline")
    raise JobError(
        f"fine-tune job {job.name} did not finish within {timeout_s:.0f}s (last status "
        f"{status}); {outcome}; raise {BY_NAME['job_timeout_s'].cli} or use a larger "
        f"compute; see {job.url}"
    )


def cancel(workspace: MLClient, name: str, timeout_s: float = CANCEL_WAIT_S) -> None:
    """Request cancellation and wait briefly for the service to accept it: the service answers
    200, or 202 with a ``Location`` the SDK's poller follows (the REST spec's example
    Job/cancel.json, replayed by tests/cassettes/azure-sdk-assets/)."""
    from azure.core.exceptions import AzureError

    deadline = Deadline(min(timeout_s, CANCEL_WAIT_S))
    try:
        wait_poller(
            Heartbeat(f"fine-tune job {name} cancellation", deadline),
            workspace.jobs.begin_cancel(name),
        )
    except AzureError as exc:
        raise CleanupError(
            f"fine-tune job {name} could not be cancelled: "
            f"{service_message(exc)}; cancel it in the studio"
        ) from None


def cancel_unless_final(workspace: MLClient, name: str, timeout_s: float) -> None:
    """Teardown: anything but Completed, Failed or Canceled may still hold compute."""
    from harness.backends.base import JOB_FINAL

    if status_text(_get(workspace, name).status) not in JOB_FINAL:
        cancel(workspace, name, timeout_s)


def failure_detail(workspace: MLClient, name: str) -> str:
    """The failed steps and their errors, from RunHistory (what ``jobs.stream`` reports),
    looking inside nested pipeline components; says so when the cause is core quota."""
    from azure.core.exceptions import AzureError

    try:
        steps = list(_unsuccessful_steps(workspace, name, "", 0))[:MAX_STEPS_SHOWN]
        lines = [f"step {path} {status}: {error}" for path, status, error in steps]
        detail = "; ".join(lines) or _run_error(workspace, name)
    except AzureError as exc:
        return f"(the job's error could not be read: {service_message(exc)})"
    if CORE_QUOTA_CODE.casefold() in detail.casefold() or is_quota(detail):
        detail += (
            "; this is a quota failure at run time: the subscription's core quota for "
            f"the cluster's VM family is too small; request a quota increase or pass "
            f"{BY_NAME['compute_sku'].cli} with a size of another family"
        )
    return detail


def _unsuccessful_steps(
    workspace: MLClient, run_id: str, prefix: str, depth: int
) -> Iterator[tuple[str, str, str]]:
    """(step path, status, error) of every step that did not complete, the innermost one
    where a step is itself a pipeline (chat_completion_pipeline's steps sit one level down)."""
    # azure-ai-ml reads children and errors through RunHistory only (jobs.stream uses the same
    # private operations); jobs.list(parent_job_name=...) would first GET each child as a job.
    runs = workspace.jobs._runs_operations
    children = [c for c in runs.get_run_children(run_id) if c is not None]
    failed = sorted(
        (c for c in children if status_text(c.status) in UNSUCCESSFUL),
        key=lambda c: UNSUCCESSFUL.index(status_text(c.status)),
    )
    for child in failed:
        path = f"{prefix}{child.display_name or child.name}"
        inner = (
            list(_unsuccessful_steps(workspace, str(child.name), f"{path}/", depth + 1))
            if depth < MAX_DEPTH
            else []
        )
        yield from inner or [
            (path, status_text(child.status), _run_error(workspace, str(child.name)))
        ]


def _run_error(workspace: MLClient, run_id: str) -> str:
    details = workspace.jobs._runs_operations.get_run_details(run_id)
    error = getattr(getattr(details, "error", None), "error", None)
    if error is None:
        return "no error reported"
    return f"{error.code}: {error.message}" if error.code else str(error.message)
