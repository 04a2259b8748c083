"""Models: the foundation model from the registry, and the fine-tuned model in the workspace.

The foundation model's card is built from the *raw* registry resource: azure-ai-ml's ``Model``
entity drops ``properties.system_metadata`` (``Model._from_rest_object`` asks
``hasattr(rest_model_version, "system_metadata")``, false for the arm ``ModelVersion`` it
deserializes), and that is where the registry keeps the compute allow-lists now. The raw GET is
the SDK's own (``azure.ai.ml._utils._registry_utils.get_registry_versioned_asset``, the request
``models.get`` sends), so discovery, authentication and retries stay the SDK's.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import read_failed, service_message
from harness.config import BY_NAME
from harness.errors import CleanupError, ConfigError, JobError
from harness.model_card import ModelCard, card_from_resource, version_from_id

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import JobRun, RegisteredModel, RegistryVersion

LATEST = "latest"
_REGISTRY_FIX = f"pass {BY_NAME['azure_model_registry'].cli} with the registry that holds it"
MAX_VERSIONS_SHOWN = 10
# Where a registered model's job shows in what the service returns: ``jobName``, else its path.
_JOB_IN_PATH = (
    re.compile(r"azureml://jobs/([^/]+)/outputs/"),
    re.compile(r"/ExperimentRun/dcid\.([^/]+)/"),
)


def _option(name: str) -> str:
    return BY_NAME[name].cli


def get_foundation_model(
    registry: MLClient, registry_name: str, name: str, version_or_label: str
) -> ModelCard:
    """A pinned version when numeric, else a label such as ``latest``; the card comes from
    the version's raw resource (tags, system metadata, archive state)."""
    version = version_or_label
    if not version_or_label.isdigit():
        version = _resolve_label(registry, registry_name, name, version_or_label)
    raw = _raw_version(registry, registry_name, name, version)
    return card_from_resource(name, raw, version)


def _resolve_label(registry: MLClient, registry_name: str, name: str, label: str) -> str:
    """The version a label names. azure-ai-ml resolves ``latest`` on a registry by listing
    ``$orderBy=createdtime desc&$top=1`` without a list view type, which leaves archived
    versions out: an archived model's ``latest`` resolves to nothing."""
    from azure.ai.ml.exceptions import ValidationException
    from azure.core.exceptions import AzureError

    try:
        return str(registry.models.get(name, label=label).version)
    except ValidationException:
        pass
    except AzureError as exc:
        raise read_failed(
            exc, f"model {name} (label {label})", f"registry {registry_name}", _REGISTRY_FIX
        ) from None
    why = (
        "the registry lists no active version of it: the model may be archived (archived "
        "versions are left out when resolving latest)"
        if label == LATEST
        else f"label {label} is not one the SDK resolves (use {LATEST} or a version number)"
    )
    raise ConfigError(
        f"model {name} (label {label}) resolves to nothing in registry {registry_name}: {why}; "
        f"{_versions_hint(registry, registry_name, name)}"
    )


def _raw_version(
    registry: MLClient, registry_name: str, name: str, version: str
) -> Mapping[str, Any]:
    from azure.ai.ml._utils._registry_utils import get_registry_versioned_asset
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    ops: Any = registry.models
    try:
        raw = get_registry_versioned_asset(
            ops._registry_service_client,
            "models",
            name,
            version,
            ops._resource_group_name,
            ops._registry_name,
        )
    except ResourceNotFoundError:
        raise ConfigError(
            f"model {name} version {version} not found in registry {registry_name}; "
            f"{_versions_hint(registry, registry_name, name)}"
        ) from None
    except AzureError as exc:
        raise read_failed(
            exc, f"model {name} version {version}", f"registry {registry_name}", _REGISTRY_FIX
        ) from None
    return raw if isinstance(raw, Mapping) else {}


def _listed(client: MLClient, name: str) -> list[Mapping[str, Any]]:
    """Every version of ``name`` as the service returns it (archived ones too), newest first
    by the version in each ``id``: the recorded registry resource carries the MODEL's name in
    ``name``. A registry answers an unknown name with an empty page, a workspace with 404
    (Corrections 2026-12, item 3): both come back as no versions."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        listing = _registry_listing if _is_registry(client) else _workspace_listing
        found = listing(client, name)
    except ResourceNotFoundError:
        return []
    return sorted(found, key=_version_number, reverse=True)


def _is_registry(client: MLClient) -> bool:
    return bool(getattr(client.models, "_registry_name", None))


def _registry_listing(registry: MLClient, name: str) -> list[Mapping[str, Any]]:
    """Through the SDK's own registry listing, asking for ``listViewType=All``."""
    from azure.ai.ml._restclient.arm_ml_service.models import ModelVersion
    from azure.ai.ml._utils._registry_utils import list_registry_assets

    ops: Any = registry.models
    return list(
        list_registry_assets(
            ops._registry_service_client,
            "models",
            name,
            ops._resource_group_name,
            ops._registry_name,
            ModelVersion,
            lambda item: item,
            list_view_type="All",
        )
    )


def _workspace_listing(workspace: MLClient, name: str) -> list[Mapping[str, Any]]:
    """A workspace's versions, as plain resources (``id`` and ``properties``)."""
    from azure.ai.ml.constants import ListViewType

    return [
        {"id": str(m.id or ""), "properties": {}}  # the SDK's Model drops the archive state
        for m in workspace.models.list(name=name, list_view_type=ListViewType.ALL)
    ]


def _version_number(item: Mapping[str, Any]) -> int:
    version = version_from_id(str(item.get("id") or ""))
    return int(version) if version.isdigit() else -1


def no_visible_version(name: str, where: str) -> ConfigError:
    """The one message for a name nothing answers to (empty page or 404)."""
    return ConfigError(
        f"no such model or no visible version: {where} returns no version of {name}; check "
        f"{_option('model_name')} (the exact, case-sensitive name) and "
        f"{_option('azure_model_registry')} (e.g. azureml-meta for Llama models, "
        "azureml-openai-oss for gpt-oss)"
    )


def registry_versions(registry: MLClient, name: str) -> list[tuple[str, bool]]:
    """(version, archived) of every version of ``name``, newest first."""
    return [
        (
            version_from_id(str(item.get("id") or "")),
            bool((item.get("properties") or {}).get("isArchived")),
        )
        for item in _listed(registry, name)
    ]


def list_versions(client: MLClient, where: str, name: str) -> list[RegistryVersion]:
    """Every version the registry (or workspace) lists for ``name``, with its archive state and
    deprecation dates read as the model card reads them; ``where`` names the client's scope
    ("registry azureml")."""
    from azure.core.exceptions import AzureError

    from harness.backends.base import RegistryVersion
    from harness.errors import TagError

    try:
        found = _listed(client, name)
    except AzureError as exc:
        raise read_failed(exc, f"the versions of model {name}", where, _REGISTRY_FIX) from None
    if not found:
        raise no_visible_version(name, where)
    versions = []
    for item in found:
        try:
            card = card_from_resource(name, item)
            version, archived = card.version, card.deprecation.archived
            dates = card.deprecation.dates()
        except TagError:  # a malformed version still shows in the listing
            version = version_from_id(str(item.get("id") or ""))
            archived = bool((item.get("properties") or {}).get("isArchived"))
            dates = {}
        versions.append(RegistryVersion(version, archived=archived, deprecation=dates))
    return versions


def _versions_hint(registry: MLClient, registry_name: str, name: str) -> str:
    """The versions the registry does return, when it says; the next step either way."""
    from azure.core.exceptions import AzureError

    try:
        versions = registry_versions(registry, name)
    except AzureError:
        return f"pass {_option('model_version')} with a version the registry holds"
    if not versions:
        return str(no_visible_version(name, f"registry {registry_name}"))
    shown = ", ".join(
        f"{v} (archived)" if archived else v for v, archived in versions[:MAX_VERSIONS_SHOWN]
    )
    return (
        f"versions the registry returns: {shown}; pass {_option('model_version')} with "
        f"one of them (e.g. {_option('model_version')} {versions[0][0]})"
    )


def model_version() -> str:
    """Unique and sortable: a timestamp plus randomness (two runs in one second differ)."""
    return f"{int(time.time())}{secrets.randbelow(10**4):04d}"


def lineage(model: Any) -> str:
    """The job a registered model came from, as the service reports it: ``jobName``, else
    the job in the path it stored (``azureml://jobs/<job>/outputs/...`` or the artifact
    store's ``ExperimentRun/dcid.<job>/...``); empty when it reports neither."""
    if getattr(model, "job_name", None):
        return str(model.job_name)
    path = str(getattr(model, "path", "") or "")
    return next((m.group(1) for p in _JOB_IN_PATH if (m := p.search(path))), "")


def register_model(
    workspace: MLClient, card: ModelCard, job: JobRun, tags: Mapping[str, str]
) -> RegisteredModel:
    """The job's ``trained_model`` output as an MLflow model, tagged and unique."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model
    from azure.core.exceptions import AzureError

    from harness.backends.base import RegisteredModel, finetuned_model_name

    name = finetuned_model_name(card.name)
    asset = Model(
        path=f"azureml://jobs/{job.name}/outputs/trained_model",
        type=AssetTypes.MLFLOW_MODEL,
        name=name,
        version=model_version(),
        tags=dict(tags),
        description=f"{card.label} fine-tuned on ultrachat_200k by job {job.name}",
    )
    try:
        made = workspace.models.create_or_update(asset)
    except AzureError as exc:
        raise JobError(
            f"cannot register the output of job {job.name} as model {name}: "
            f"{service_message(exc)}; check that the job Completed and has a trained_model "
            f"output ({job.url})"
        ) from None
    return RegisteredModel(
        name=str(made.name),
        version=str(made.version),
        id=str(made.id),
        job_name=lineage(made),
        tags=dict(made.tags or {}),
    )


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
