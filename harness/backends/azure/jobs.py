"""The fine-tune pipeline job: component inputs, submission, waiting with a deadline, cancel.

``jobs.stream()`` is not used: it returns normally on Canceled, NotResponding and Paused, so
success is asserted here as the status Completed, polled with ``jobs.get`` against a deadline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import service_message, status_text
from harness.config import BY_NAME
from harness.errors import CleanupError, DataError, HarnessError, JobError, ParameterError
from harness.waiting import Deadline

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Compute, JobRun
    from harness.data import PreparedData
    from harness.tags import ModelCard

COMPONENT = "chat_completion_pipeline"
SPEC_KEYS = ("default", "optional", "enum", "min", "max")
COMPUTE_INPUTS = ("compute_model_import", "compute_preprocess", "compute_finetune",
                  "compute_model_evaluation")
CANCEL_WAIT_S = 60.0
UNSUCCESSFUL = ("Failed", "NotResponding", "Paused", "Canceled")  # most telling first
MAX_STEPS_SHOWN = 3


def get_component(registry: MLClient, registry_name: str) -> Any:
    from azure.core.exceptions import AzureError

    try:
        return registry.components.get(COMPONENT, label="latest")
    except AzureError as exc:
        raise HarnessError(
            f"cannot read component {COMPONENT} (label latest) from registry {registry_name}: "
            f"{service_message(exc)}; check {BY_NAME['azure_registry'].cli} and the "
            "credential's access to it"
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


def _data_files(data: PreparedData) -> tuple[str, str]:
    missing = [s for s in ("train_sft", "test_sft") if s not in data.files]
    if missing:
        raise DataError(f"prepared data in {data.directory} lacks {', '.join(missing)}; "
                        f"found {sorted(data.files)}; prepare the data again")
    return data.files["train_sft"], data.files["test_sft"]


def build_pipeline(component: Any, card: ModelCard, compute: Compute, data: PreparedData,
                   parameters: Mapping[str, Any], display_name: str,
                   tags: Mapping[str, str]) -> Any:
    """The seed's pipeline; the harness's wiring wins over a parameter of the same name."""
    from azure.ai.ml import Input
    from azure.ai.ml.dsl import pipeline
    from azure.ai.ml.entities import PipelineJobSettings
    from azure.ai.ml.exceptions import MlException

    train, test = _data_files(data)
    wiring: dict[str, Any] = {name: compute.name for name in COMPUTE_INPUTS}
    wiring.update(mlflow_model_path=card.id, number_of_gpu_to_use_finetuning=compute.gpus_per_node,
                  train_file_path=Input(type="uri_file", path=train),
                  test_file_path=Input(type="uri_file", path=test))
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
    return _handle(made, experiment)


def _handle(job: Any, experiment: str) -> JobRun:
    from harness.backends.base import JobRun

    return JobRun(name=str(job.name), display_name=str(job.display_name or job.name),
                  status=status_text(job.status), url=str(job.studio_url or ""),
                  experiment=experiment or str(getattr(job, "experiment_name", "") or ""))


def get_job(workspace: MLClient, name: str) -> JobRun:
    return _handle(_get(workspace, name), "")


def _get(workspace: MLClient, name: str) -> Any:
    from azure.core.exceptions import AzureError

    try:
        return workspace.jobs.get(name)
    except AzureError as exc:
        raise JobError(f"cannot read fine-tune job {name}: {service_message(exc)}; check the "
                       "credential's access to the workspace") from None


def wait_for_job(workspace: MLClient, job: JobRun, timeout_s: float,
                 poll_interval_s: float) -> JobRun:
    """Poll until a terminal status; cancel the job at the deadline; only Completed passes."""
    from harness.backends.base import JOB_FINAL

    deadline = Deadline(timeout_s)
    current = _get(workspace, job.name)
    while status_text(current.status) not in JOB_FINAL:
        if deadline.expired:
            _cancel_at_deadline(workspace, job, timeout_s, status_text(current.status))
        deadline.sleep(poll_interval_s)
        current = _get(workspace, job.name)
    status = status_text(current.status)
    done = dataclasses.replace(job, status=status, url=str(current.studio_url or job.url))
    if status != "Completed":
        raise JobError(
            f"fine-tune job {job.name} ({job.display_name}) ended {status}, expected "
            f"Completed: {failure_detail(workspace, job.name)}; see {done.url}"
        )
    return done


def _cancel_at_deadline(workspace: MLClient, job: JobRun, timeout_s: float, status: str) -> None:
    try:
        cancel(workspace, job.name)
        outcome = "it was cancelled at the deadline"
    except CleanupError as exc:
        outcome = f"cancelling it at the deadline failed ({exc})"
    raise JobError(
        f"fine-tune job {job.name} did not finish within {timeout_s:.0f}s (last status "
        f"{status}); {outcome}; raise {BY_NAME['job_timeout_s'].cli} or use a larger "
        f"compute; see {job.url}"
    )


def cancel(workspace: MLClient, name: str, timeout_s: float = CANCEL_WAIT_S) -> None:
    """Request cancellation and wait briefly for the service to accept it."""
    from azure.core.exceptions import AzureError

    try:
        Deadline(min(timeout_s, CANCEL_WAIT_S)).wait(workspace.jobs.begin_cancel(name))
    except AzureError as exc:
        raise CleanupError(f"fine-tune job {name} could not be cancelled: "
                           f"{service_message(exc)}; cancel it in the studio") from None


def cancel_unless_final(workspace: MLClient, name: str, timeout_s: float) -> None:
    """Teardown: anything but Completed, Failed or Canceled may still hold compute."""
    from harness.backends.base import JOB_FINAL

    if status_text(_get(workspace, name).status) not in JOB_FINAL:
        cancel(workspace, name, timeout_s)


def failure_detail(workspace: MLClient, name: str) -> str:
    """The failed steps and their errors, from RunHistory (what ``jobs.stream`` reports)."""
    from azure.core.exceptions import AzureError

    try:
        steps = sorted((s for s in workspace.jobs.list(parent_job_name=name)
                        if status_text(s.status) in UNSUCCESSFUL),
                       key=lambda s: UNSUCCESSFUL.index(status_text(s.status)))
        lines = [f"step {s.display_name or s.name} {status_text(s.status)}: "
                 f"{_run_error(workspace, str(s.name))}" for s in steps[:MAX_STEPS_SHOWN]]
        return "; ".join(lines) or _run_error(workspace, name)
    except AzureError as exc:
        return f"(the job's error could not be read: {service_message(exc)})"


def _run_error(workspace: MLClient, run_id: str) -> str:
    # azure-ai-ml exposes a job's error only through RunHistory run details; jobs.stream reads
    # the same private operations object to print it.
    details = workspace.jobs._runs_operations.get_run_details(run_id)
    error = getattr(getattr(details, "error", None), "error", None)
    if error is None:
        return "no error reported"
    return f"{error.code}: {error.message}" if error.code else str(error.message)
