"""The service's second fine-tuning route: the ``FineTuning`` job of ``azure.ai.ml.finetuning``.

azure-ai-ml (>= 1.23, still experimental) builds it with ``create_finetuning_job`` and sends it
at api-version 2024-10-01-preview (``operations/_job_operations.py``: the 2025-12-01 TypeSpec
removed ``JobType.FINE_TUNING``, so the SDK routes on the literal wire value ``FineTuning``).
It runs on managed compute (``instance_types=[...]``: the service provisions the size, there is
no cluster) or serverless (neither compute nor instance types; billed per token). The job
registers its own output model, ``outputs["registered_model"]`` (azureml-examples
``sdk/python/jobs/finetuning/standalone/model-as-a-platform/chat-completion/
chat_completion_with_model_as_platform.ipynb``). Waiting, states, deadlines and failure detail
are the pipeline route's (``jobs.py``): the job is a run like any other.

Metrics: the service runs the job as a tree of runs under the job's name, its trainer (the same
Hugging Face Trainer as the pipeline's ``chat_completion_finetune`` step) logging to the job's
MLflow experiment; ``metrics.job_metrics`` finds that run by ``tags.mlflow.rootRunId`` and the
``epoch`` metric only the trainer logs, so both routes read them the same way. No public
recording shows this job type's run tree (the studio shows it as child jobs of the FineTuning
job): a live run that finds no training run fails saying so, never with empty figures.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness import compute as sizes_rule
from harness import finetune_params
from harness.backends.azure import jobs
from harness.backends.azure import models as azure_models
from harness.backends.azure.clients import service_message
from harness.backends.base import SERVERLESS_COMPUTE
from harness.config import BY_NAME, FINETUNING_JOB
from harness.errors import JobError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Compute, JobRun, RegisteredModel, VmSize
    from harness.config import HarnessConfig
    from harness.data import PreparedData
    from harness.model_card import ModelCard

API_VERSION = "2024-10-01-preview"  # azure-ai-ml _ml_client.py ServiceClient102024PreviewTsp
JOB_TYPE = "FineTuning"
OUTPUT = "registered_model"
EXPERIMENTAL_LOGGER = "azure.ai.ml._utils._experimental"  # one warning per experimental call
# The trainer's hyperparameters: the chat_completion_pipeline 0.0.82 inputs that its finetune
# step reads (azureml-assets pipeline_components/chat_completion, the shipped inputs file). The
# route runs the same trainer; the compute, node, instance type, asset and evaluation inputs of
# the pipeline are the service's business here and are no hyperparameter.
HYPERPARAMETERS = (
    "apply_deepspeed",
    "apply_early_stopping",
    "apply_lora",
    "apply_ort",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "auto_find_batch_size",
    "dataloader_num_workers",
    "deepspeed_stage",
    "early_stopping_patience",
    "early_stopping_threshold",
    "eval_accumulation_steps",
    "eval_steps",
    "evaluation_steps_interval",
    "evaluation_strategy",
    "gradient_accumulation_steps",
    "learning_rate",
    "logging_steps",
    "logging_strategy",
    "lora_alpha",
    "lora_dropout",
    "lora_r",
    "lr_scheduler_type",
    "max_grad_norm",
    "max_seq_length",
    "max_steps",
    "merge_lora_weights",
    "metric_for_best_model",
    "num_train_epochs",
    "optim",
    "per_device_eval_batch_size",
    "per_device_train_batch_size",
    "precision",
    "save_total_limit",
    "seed",
    "warmup_steps",
    "weight_decay",
)


def hyperparameter_inputs() -> dict[str, dict[str, Any]]:
    """The route's parameters in the component-inputs shape: ``finetune_params.plan_parameters``
    filters, types and bounds them exactly as for the pipeline (and names the closest one)."""
    inputs = finetune_params.load_component_inputs()
    return {name: dict(inputs[name]) for name in HYPERPARAMETERS if name in inputs}


def instance_type(card: ModelCard, sku: str | None, offered: Sequence[VmSize]) -> Compute:
    """The managed-compute size, by the pipeline's rule (``harness.compute``); no cluster."""
    from harness.backends.base import Compute

    gpu_counts = {size.name: size.gpus for size in offered}
    chosen = sizes_rule.choose_finetune_sku(card, sku, list(gpu_counts), gpus=gpu_counts)
    gpus = sizes_rule.gpus_for_sku(chosen, [(size.name, size.gpus) for size in offered])
    return Compute(name=chosen, sku=chosen, gpus_per_node=gpus)


def serverless_compute() -> Compute:
    """Serverless: the service chooses and runs the compute; the handle says so."""
    from harness.backends.base import Compute

    return Compute(name=SERVERLESS_COMPUTE, sku=SERVERLESS_COMPUTE, gpus_per_node=0)


def quiet_experimental() -> None:
    """azure-ai-ml warns on every call of an experimental API (this whole route is one):
    said once here instead of a dozen times per run."""
    sdk = logging.getLogger(EXPERIMENTAL_LOGGER)
    if sdk.level == logging.NOTSET:
        sdk.setLevel(logging.ERROR)
        logging.getLogger("harness").info(
            "the %s route uses azure-ai-ml's experimental FineTuning and serverless APIs",
            FINETUNING_JOB,
        )


def _wire(value: Any) -> str:
    """Hyperparameters travel as strings (the REST ``hyperParameters`` is a string map)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_job(
    card: ModelCard,
    compute: Compute,
    data: PreparedData,
    parameters: Mapping[str, Any],
    display_name: str,
    tags: Mapping[str, str],
    experiment: str,
) -> Any:
    """The job, always with validation data: azure-ai-ml 1.35.2 raises UnboundLocalError
    without it (``finetuning/_create_job.py`` assigns ``validation_data_input`` only if given)."""
    from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job

    from harness.backends.base import finetuned_model_name

    train, validation = data.training_files()
    serverless = compute.sku == SERVERLESS_COMPUTE
    quiet_experimental()
    return create_finetuning_job(
        model=card.id,
        task=FineTuningTaskType.CHAT_COMPLETION,
        training_data=train,
        validation_data=validation,
        output_model_name_prefix=finetuned_model_name(card.name),
        hyperparameters={name: _wire(value) for name, value in parameters.items()},
        instance_types=None if serverless else [compute.sku],
        display_name=display_name,
        experiment_name=experiment,
        tags=dict(tags),
    )


def submit(workspace: MLClient, job: Any, experiment: str) -> JobRun:
    """Uploads the JSON Lines files (the SDK does it on create) and submits the job."""
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        made = workspace.jobs.create_or_update(job, experiment_name=experiment)
    except HttpResponseError as exc:
        if exc.status_code == 400:
            raise refused(job.display_name, service_message(exc)) from None
        raise _not_submitted(job.display_name, experiment, service_message(exc)) from None
    except AzureError as exc:
        raise _not_submitted(job.display_name, experiment, service_message(exc)) from None
    return jobs.handle(made, experiment)


def refused(display_name: str, said: str) -> JobError:
    """A 400 at submission: most likely the service no longer takes the preview job type."""
    route = BY_NAME["finetune_route"].cli
    return JobError(
        f"the {FINETUNING_JOB} route's job {display_name} (type {JOB_TYPE}) was refused at "
        f"api-version {API_VERSION}: {said}; azure-ai-ml notes that the {JOB_TYPE} type is "
        "removed from api-version 2025-12-01: check for an azure-ai-ml release that supports "
        f"it, or run the pipeline route ({route} pipeline)"
    )


def _not_submitted(display_name: str, experiment: str, said: str) -> JobError:
    return JobError(
        f"{FINETUNING_JOB} job {display_name} could not be submitted to experiment "
        f"{experiment} (api-version {API_VERSION}): {said}; check the inputs and the quota"
    )


def output_model(workspace: MLClient, job: JobRun, tags: Mapping[str, str]) -> RegisteredModel:
    """The model the job registered, found by the lineage the service reports for it, then
    tagged for the sweep (the service registers it without the run's tags)."""
    from azure.core.exceptions import AzureError

    try:
        name = _output_name(workspace, job)
        made = _version_of(workspace, name, job)
        made.tags = {**(made.tags or {}), **tags}
        tagged = workspace.models.create_or_update(made)
    except AzureError as exc:
        raise JobError(
            f"cannot read or tag the model job {job.name} registered: {service_message(exc)}; "
            f"see {job.url}"
        ) from None
    return azure_models.registered(tagged)


def _output_name(workspace: MLClient, job: JobRun) -> str:
    output = (workspace.jobs.get(job.name).outputs or {}).get(OUTPUT)
    name = output.get("name") if isinstance(output, dict) else getattr(output, "name", None)
    if not name:
        raise JobError(f"job {job.name} has no {OUTPUT} output naming a model; see {job.url}")
    return str(name)


def _version_of(workspace: MLClient, name: str, job: JobRun) -> Any:
    """The version of ``name`` whose lineage is this job (the name is shared across runs)."""
    versions = list(workspace.models.list(name=name))
    mine = [model for model in versions if azure_models.lineage(model) == job.name]
    if not mine:
        seen = ", ".join(f"{m.version} (job {azure_models.lineage(m) or '?'})" for m in versions)
        raise JobError(
            f"job {job.name} Completed, but no version of model {name} names it as its job "
            f"(versions: {seen or 'none'}); see {job.url}"
        )
    return mine[-1]


# The api-version azure-ai-ml 1.35 sends a pipeline job at (operations/_job_operations.py:
# PIPELINE goes through service_client_01_2024_preview_arm).
PIPELINE_API_VERSION = "2024-01-01-preview"


def route_facts(config: HarnessConfig, card: ModelCard, region: str | None) -> dict[str, Any]:
    """What ``plan`` and ``check`` say of the route: where the model and the trainer come from,
    which API carries the job, what runs it, and for serverless whether the region can."""
    from harness.serverless_regions import serverless_regions

    facts: dict[str, Any] = {
        "route": config.route,
        "model": card.id,
        "model_registry": config.azure_model_registry,
    }
    if config.finetune_route != FINETUNING_JOB:
        facts.update(
            job_type="Pipeline",
            component=f"{jobs.COMPONENT} (label latest)",
            component_registry=config.azure_component_registry,
            api_version=PIPELINE_API_VERSION,
            compute="a cluster (--compute-name, --compute-sku)",
        )
        return facts
    facts.update(
        job_type=JOB_TYPE,
        api_version=API_VERSION,
        compute="serverless" if config.serverless else "managed (instance_types, no cluster)",
        output=f"outputs[{OUTPUT!r}]",
    )
    if config.serverless:
        answer = serverless_regions(card.name, region, card.tags)
        facts["serverless_region"] = {
            "region": region,
            "regions": list(answer.regions or ()),
            "supported": answer.supported if region else None,
            "source": answer.source,
            "text": answer.describe(),
        }
    return facts
