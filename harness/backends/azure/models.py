"""Models: the foundation model from the registry, and the fine-tuned model in the workspace."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from harness.backends.azure.clients import service_message
from harness.config import BY_NAME
from harness.errors import CleanupError, ConfigError, HarnessError, JobError
from harness.tags import ModelCard, model_card

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import JobRun, RegisteredModel
    from harness.versions import RegistryVersion

def get_foundation_model(registry: MLClient, registry_name: str, name: str,
                         version_or_label: str) -> ModelCard:
    """A pinned version when numeric, else a label such as ``latest``."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    how = {"version": version_or_label} if version_or_label.isdigit() else {
        "label": version_or_label}
    wanted = f"{name} ({next(iter(how))} {version_or_label})"
    try:
        model = registry.models.get(name, **how)
    except ResourceNotFoundError as exc:
        raise ConfigError(
            f"model {wanted} not found in registry {registry_name}: {service_message(exc)}; "
            f"pass {BY_NAME['model_name'].cli} / {BY_NAME['model_version'].cli} with a model "
            "the registry holds"
        ) from None
    except AzureError as exc:
        raise HarnessError(
            f"cannot read model {wanted} from registry {registry_name}: "
            f"{service_message(exc)}; check the credential's access to the registry"
        ) from None
    return model_card(str(model.name), str(model.version), str(model.id), model.tags or {})


def list_versions(registry: MLClient, registry_name: str, name: str) -> list[RegistryVersion]:
    """Every version the registry lists for ``name``, archived ones included."""
    from azure.ai.ml.constants import ListViewType
    from azure.core.exceptions import AzureError

    from harness.versions import RegistryVersion

    try:
        found = list(registry.models.list(name=name, list_view_type=ListViewType.ALL))
    except AzureError as exc:
        raise HarnessError(f"cannot list the versions of model {name} in registry "
                           f"{registry_name}: {service_message(exc)}") from None
    return [RegistryVersion(str(m.version), archived=str(getattr(m, "stage", "")) == "Archived")
            for m in found]


def model_version() -> str:
    """Unique and sortable: a timestamp plus randomness (two runs in one second differ)."""
    return f"{int(time.time())}{secrets.randbelow(10**4):04d}"


def register_model(workspace: MLClient, card: ModelCard, job: JobRun,
                   tags: Mapping[str, str]) -> RegisteredModel:
    """The job's ``trained_model`` output as an MLflow model, tagged and unique."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model
    from azure.core.exceptions import AzureError

    from harness.backends.base import RegisteredModel, finetuned_model_name

    name = finetuned_model_name(card.name)
    asset = Model(
        path=f"azureml://jobs/{job.name}/outputs/trained_model", type=AssetTypes.MLFLOW_MODEL,
        name=name, version=model_version(), tags=dict(tags),
        description=f"{card.label} fine-tuned on ultrachat_200k by job {job.name}")
    try:
        made = workspace.models.create_or_update(asset)
    except AzureError as exc:
        raise JobError(
            f"cannot register the output of job {job.name} as model {name}: "
            f"{service_message(exc)}; check that the job Completed and has a trained_model "
            f"output ({job.url})"
        ) from None
    return RegisteredModel(name=str(made.name), version=str(made.version), id=str(made.id),
                           job_name=job.name, tags=dict(made.tags or {}))


def delete_model(workspace: MLClient, name: str, version: str) -> None:
    """Archive the version: azure-ai-ml has no delete for workspace model versions."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        workspace.models.archive(name, version)
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise CleanupError(
            f"model {name}:{version} could not be archived: {service_message(exc)}; archive "
            "it in the studio or run `python -m harness sweep`"
        ) from None
