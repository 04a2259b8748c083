"""The Azure ML backend: the seed notebook's workflow through azure-ai-ml, gaps closed.

Each step lives in a module named after what it drives (``azure_compute``, ``azure_jobs``,
``azure_endpoints``, ...); this class only holds the run's clients and settings. Creating it
is cheap and offline: the clients are built on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from harness.backends import (
    azure_compute,
    azure_endpoints,
    azure_jobs,
    azure_metrics,
    azure_models,
    azure_scoring,
    azure_sweep,
)
from harness.backends.azure_clients import AzureClients
from harness.errors import CleanupError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential

    from harness.backends.base import (
        Compute,
        Deployment,
        Endpoint,
        EndpointPoller,
        JobRun,
        OwnedResource,
        RegisteredModel,
        ScoringReply,
        TrainingMetrics,
    )
    from harness.config import HarnessConfig
    from harness.data import PreparedData
    from harness.tags import ModelCard


class AzureBackend:
    """Backend protocol on an Azure ML workspace and the system registry."""

    name = "azure"

    def __init__(self, config: HarnessConfig, credential: TokenCredential | None = None,
                 retry_total: int | None = None) -> None:
        self.config = config
        self.clients = AzureClients(config, credential, retry_total)
        self.poll_interval_s = 30.0  # between jobs.get calls; tests set 0
        self.delete_timeout_s = config.endpoint_timeout_s  # lower it when time is short

    @property
    def workspace(self) -> MLClient:
        return self.clients.workspace

    @cached_property
    def _component(self) -> Any:
        return azure_jobs.get_component(self.clients.registry, self.config.azure_registry)

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard:
        return azure_models.get_foundation_model(
            self.clients.registry, self.config.azure_registry, name, version_or_label)

    def component_inputs(self) -> Mapping[str, Mapping[str, Any]]:
        return azure_jobs.component_inputs(self._component)

    def ensure_compute(self, card: ModelCard, name: str, sku: str | None,
                       tags: Mapping[str, str]) -> Compute:
        return azure_compute.ensure_compute(self.workspace, card, name, sku, tags,
                                            self.config.compute_timeout_s)

    def submit_finetune(self, card: ModelCard, compute: Compute, data: PreparedData,
                        parameters: Mapping[str, Any], display_name: str,
                        tags: Mapping[str, str]) -> JobRun:
        job = azure_jobs.build_pipeline(self._component, card, compute, data, parameters,
                                        display_name, tags)
        return azure_jobs.submit(self.workspace, job, self.config.experiment_name)

    def wait_for_job(self, job: JobRun, timeout_s: float) -> JobRun:
        return azure_jobs.wait_for_job(self.workspace, job, timeout_s, self.poll_interval_s)

    def cancel_job(self, job: JobRun) -> None:
        azure_jobs.cancel_if_running(self.workspace, job)

    def delete_job(self, job: JobRun) -> None:
        """Cancel it if it runs; the finished job stays as run history, which costs nothing."""
        self.cancel_job(job)

    def job_metrics(self, job: JobRun) -> TrainingMetrics:
        store = azure_metrics.rest_store(azure_metrics.tracking_uri(self.workspace),
                                         self.clients.token)
        return azure_metrics.job_metrics(store, job.experiment or self.config.experiment_name,
                                         job)

    def register_model(self, card: ModelCard, job: JobRun,
                       tags: Mapping[str, str]) -> RegisteredModel:
        return azure_models.register_model(self.workspace, card, job, tags)

    def begin_create_endpoint(self, name: str, tags: Mapping[str, str]) -> EndpointPoller:
        return azure_endpoints.begin_create_endpoint(self.workspace, name, tags)

    def deploy(self, endpoint: Endpoint, model: RegisteredModel, name: str, instance_type: str,
               tags: Mapping[str, str], timeout_s: float) -> Deployment:
        return azure_endpoints.deploy(self.workspace, endpoint, model, name, instance_type,
                                      tags, timeout_s)

    def get_endpoint(self, name: str) -> Endpoint:
        return azure_endpoints.get_endpoint(self.workspace, name)

    def endpoint_key(self, endpoint: Endpoint) -> str:
        """The endpoint's primary key, for ``invoke_raw``."""
        return azure_endpoints.endpoint_key(self.workspace, endpoint.name)

    def invoke(self, endpoint: Endpoint, deployment: Deployment,
               request: Mapping[str, Any]) -> ScoringReply:
        return azure_scoring.invoke(self.workspace, endpoint, deployment, request)

    def invoke_raw(self, endpoint: Endpoint, request: Mapping[str, Any],
                   key: str | None) -> ScoringReply:
        return azure_scoring.invoke_raw(endpoint, request, key, self.config.scoring_timeout_s)

    def delete_endpoint(self, name: str) -> None:
        azure_endpoints.delete_endpoint(self.workspace, name, self.delete_timeout_s)

    def delete_model(self, model: RegisteredModel) -> None:
        azure_models.delete_model(self.workspace, model.name, model.version)

    def delete_compute(self, compute: Compute) -> None:
        """Only a cluster this harness created: an existing one is someone else's."""
        if compute.created_by_harness:
            azure_compute.delete_compute(self.workspace, compute.name, self.delete_timeout_s)

    def list_owned_resources(self) -> Sequence[OwnedResource]:
        return azure_sweep.list_owned(self.workspace)

    def delete_resource(self, resource: OwnedResource) -> None:
        if resource.kind == "endpoint":
            self.delete_endpoint(resource.name)
        elif resource.kind == "compute":
            azure_compute.delete_compute(self.workspace, resource.name, self.delete_timeout_s)
        elif resource.kind == "model":
            name, _, version = resource.name.rpartition(":")
            azure_models.delete_model(self.workspace, name, version)
        else:
            raise CleanupError(f"the azure backend cannot delete a {resource.kind} "
                               f"({resource.name}); delete it in the studio")

    def close(self) -> None:
        self.clients.close()
