"""The Azure ML backend: the seed notebook's workflow through azure-ai-ml, gaps closed.

Each step lives in the module named after it (``compute``, ``jobs``, ``endpoints``,
``deployments``, ...); this class only holds the run's clients and settings and delegates.
Creating it is cheap and offline: the clients are built on first use.

Fine-tuning has two routes (``--finetune-route``): the registry pipeline (``jobs``) and the
FineTuning job type (``finetuning_jobs``), the latter on managed compute or, with
``--serverless``, serverless with its model deployed as a serverless endpoint
(``serverless``). A serverless endpoint needs the model, so it is created when the run first
waits for its endpoint, from the model this process resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from harness.backends.azure import (
    compute,
    deployments,
    endpoints,
    finetuning_jobs,
    jobs,
    metrics,
    models,
    scoring,
    serverless,
    sweep,
)
from harness.backends.azure.clients import AzureClients
from harness.config import FINETUNING_JOB
from harness.errors import DeploymentError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential

    from harness.backends.base import (
        Compute,
        Deployment,
        Endpoint,
        JobRun,
        OwnedResource,
        RegisteredModel,
        RegistryVersion,
        ScoringReply,
        Secret,
        TrainingMetrics,
        VmSize,
    )
    from harness.config import HarnessConfig
    from harness.data import PreparedData
    from harness.model_card import ModelCard


class AzureBackend:
    """Backend protocol on an Azure ML workspace and the system registry."""

    name = "azure"

    def __init__(
        self,
        config: HarnessConfig,
        credential: TokenCredential | None = None,
        retry_total: int | None = None,
    ) -> None:
        self.config = config
        self.clients = AzureClients(config, credential, retry_total)
        self.poll_interval_s = 30.0  # between jobs.get calls; tests set 0
        self.progress_interval_s = 120.0  # between reads of the training's steps (MLflow)
        self._endpoint_pollers: dict[str, Any] = {}  # creations this process started
        self.finetuning_job = config.finetune_route == FINETUNING_JOB
        self.serverless = self.finetuning_job and config.serverless
        self._serverless_endpoints: dict[str, dict[str, str]] = {}  # name -> its tags
        self._model: RegisteredModel | None = None  # the one a serverless endpoint serves

    @property
    def workspace(self) -> MLClient:
        return self.clients.workspace

    @cached_property
    def _component(self) -> Any:
        return jobs.get_component(
            self.clients.component_registry, self.config.azure_component_registry
        )

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard:
        return models.get_foundation_model(
            self.clients.model_registry, self.config.azure_model_registry, name, version_or_label
        )

    def list_model_versions(self, name: str) -> Sequence[RegistryVersion]:
        return models.list_versions(
            self.clients.model_registry, f"registry {self.config.azure_model_registry}", name
        )

    def list_vm_sizes(self) -> Sequence[VmSize]:
        return compute.list_sizes(self.workspace)

    def component_inputs(self) -> Mapping[str, Mapping[str, Any]]:
        if self.finetuning_job:
            return finetuning_jobs.hyperparameter_inputs()
        return jobs.component_inputs(self._component)

    def ensure_compute(
        self, card: ModelCard, name: str, sku: str | None, tags: Mapping[str, str]
    ) -> Compute:
        """The pipeline's cluster; the FineTuning route creates none (the service runs it)."""
        if self.serverless:
            return finetuning_jobs.serverless_compute()
        if self.finetuning_job:
            return finetuning_jobs.instance_type(card, sku, self.list_vm_sizes())
        return compute.ensure_compute(
            self.workspace, card, name, sku, tags, self.config.compute_timeout_s
        )

    def submit_finetune(
        self,
        card: ModelCard,
        compute_: Compute,
        data: PreparedData,
        parameters: Mapping[str, Any],
        display_name: str,
        tags: Mapping[str, str],
    ) -> JobRun:
        if self.finetuning_job:
            built = finetuning_jobs.build_job(
                card, compute_, data, parameters, display_name, tags, self.config.experiment_name
            )
            return finetuning_jobs.submit(self.workspace, built, self.config.experiment_name)
        job = jobs.build_pipeline(
            self._component, card, compute_, data, parameters, display_name, tags
        )
        return jobs.submit(self.workspace, job, self.config.experiment_name)

    def wait_for_job(self, job: JobRun, timeout_s: float) -> JobRun:
        progress = metrics.TrainingProgress(
            self._metrics_store,
            job.experiment or self.config.experiment_name,
            job,
            self.progress_interval_s,
        )
        return jobs.wait_for_job(
            self.workspace,
            job,
            timeout_s,
            self.poll_interval_s,
            self.config.job_not_responding_grace_s,
            progress,
        )

    def get_job(self, name: str) -> JobRun:
        return jobs.get_job(self.workspace, name)

    def job_metrics(self, job: JobRun) -> TrainingMetrics:
        """Both routes' trainer logs to MLflow under the job's root run (``metrics``)."""
        return metrics.job_metrics(
            self._metrics_store(), job.experiment or self.config.experiment_name, job
        )

    def _metrics_store(self) -> Any:
        return metrics.rest_store(metrics.tracking_uri(self.workspace), self.clients.token)

    def register_model(
        self, card: ModelCard, job: JobRun, tags: Mapping[str, str]
    ) -> RegisteredModel:
        if self.finetuning_job:
            self._model = finetuning_jobs.output_model(self.workspace, job, tags)
            return self._model
        return models.register_model(self.workspace, card, job, tags)

    def begin_create_endpoint(self, name: str, tags: Mapping[str, str]) -> Endpoint:
        """Serverless: nothing to start yet (the endpoint is made from the model)."""
        if self.serverless:
            from harness.backends.base import Endpoint

            self._serverless_endpoints[name] = dict(tags)
            return Endpoint(name, "", "key", "NotStarted", dict(tags))
        self._endpoint_pollers[name] = endpoints.begin_create_endpoint(self.workspace, name, tags)
        return self.get_endpoint(name)

    def wait_for_endpoint(self, name: str, timeout_s: float) -> Endpoint:
        if self.serverless:
            return self._create_serverless(name, timeout_s)
        poller = self._endpoint_pollers.get(name)
        return endpoints.wait_for_endpoint(self.workspace, name, poller, timeout_s)

    def _create_serverless(self, name: str, timeout_s: float) -> Endpoint:
        if self._model is None:
            raise DeploymentError(
                f"serverless endpoint {name} serves the fine-tuned model, and this process "
                "resolved none: the serverless route needs the model fixture first (run it "
                "without -n, or request finetuned_model before online_endpoint)"
            )
        tags = self._serverless_endpoints.get(name, self._model.tags)
        return serverless.create(self.workspace, name, self._model, tags, timeout_s)

    def get_endpoint(self, name: str) -> Endpoint:
        if self.serverless:
            return serverless.get(self.workspace, name)
        return endpoints.get_endpoint(self.workspace, name)

    def deploy(
        self,
        endpoint: Endpoint,
        model: RegisteredModel,
        name: str,
        instance_type: str,
        tags: Mapping[str, str],
        timeout_s: float,
    ) -> Deployment:
        if self.serverless:
            return serverless.deployment(self.workspace, endpoint, model)
        return deployments.deploy(
            self.workspace, endpoint, model, name, instance_type, tags, timeout_s
        )

    def endpoint_key(self, endpoint: Endpoint) -> Secret:
        """The endpoint's primary key, for ``invoke_raw`` (masked in any output)."""
        from harness.backends.base import Secret

        if self.serverless:
            return Secret(serverless.key(self.workspace, endpoint.name))
        return Secret(endpoints.endpoint_key(self.workspace, endpoint.name))

    def invoke(
        self, endpoint: Endpoint, deployment: Deployment, request: Mapping[str, Any]
    ) -> ScoringReply:
        if self.serverless:
            key = self.endpoint_key(endpoint)
            return serverless.invoke(endpoint, request, key, self.config.scoring_timeout_s)
        return scoring.invoke(
            self.workspace, endpoint, deployment, request, self.config.scoring_timeout_s
        )

    def invoke_raw(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: Secret | str | None
    ) -> ScoringReply:
        if self.serverless:
            from harness.backends.base import Secret

            wrapped = Secret.wrap(key)
            return serverless.invoke(endpoint, request, wrapped, self.config.scoring_timeout_s)
        return scoring.invoke_raw(endpoint, request, key, self.config.scoring_timeout_s)

    def reference_likelihood(
        self,
        foundation: ModelCard,
        finetuned: RegisteredModel,
        conversations: Sequence[Sequence[Mapping[str, str]]],
    ) -> None:
        """The foundation model would have to be deployed to score it: not measured here."""
        return None

    def delete_compute(self, name: str, timeout_s: float) -> None:
        compute.delete_compute(self.workspace, name, timeout_s)

    def delete_job(self, name: str, timeout_s: float) -> None:
        """Cancel it unless it ended; the job itself stays as run history, which costs nothing."""
        jobs.cancel_unless_final(self.workspace, name, timeout_s)

    def delete_model(self, ref: str, timeout_s: float) -> None:
        name, _, version = ref.rpartition(":")
        models.delete_model(self.workspace, name, version)

    def delete_endpoint(self, name: str, timeout_s: float) -> None:
        """An online endpoint, or a serverless one this run made or the sweep listed."""
        if self.serverless or name in self._serverless_endpoints:
            serverless.delete(self.workspace, name, timeout_s)
        else:
            endpoints.delete_endpoint(self.workspace, name, timeout_s)

    def list_owned_resources(self) -> Sequence[OwnedResource]:
        found = sweep.list_owned(self.workspace)
        self._serverless_endpoints.update(
            {r.name: r.tags for r in found if r.detail.startswith(serverless.DETAIL)}
        )
        return found

    def close(self, stop_owned: bool) -> None:
        """Nothing runs in this process: what Azure runs is deleted through the tracker."""
        self.clients.close()
