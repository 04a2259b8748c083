"""``LocalBackend``: the whole fine-tune/register/deploy/score workflow for real on one machine.

Each step lives in the module named after it (``models``, ``compute``, ``jobs``, ``metrics``,
``endpoints``, ``deployments``, ``scoring``, ``sweep``), as in ``harness.backends.azure``; this
class only holds the workspace and the processes it started, and delegates. Constructing it is
cheap (no torch, no MLflow import). Every process it starts runs in its own process group and
is stopped by ``close(stop_owned=True)``, which also runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from harness.backends.base import (
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    LikelihoodComparison,
    OwnedResource,
    RegisteredModel,
    RegistryVersion,
    ScoringReply,
    Secret,
    TrainingMetrics,
    VmSize,
)
from harness.backends.local import (
    compute,
    deployments,
    endpoints,
    models,
    registry,
    scoring,
    sweep,
)
from harness.backends.local.compute import LOCAL_CPU, LOCAL_GPU
from harness.backends.local.jobs import Jobs, job_inputs
from harness.backends.local.model_cache import ModelCache
from harness.backends.local.models import DEFAULT_MODEL_NAME
from harness.backends.local.processes import STOP_GRACE_S, Child, use_compiler_caches
from harness.backends.local.training.parameters import local_component_inputs
from harness.backends.local.workspace import Workspace
from harness.config import HarnessConfig
from harness.data import PreparedData
from harness.errors import CleanupError, HarnessError
from harness.model_card import ModelCard
from harness.naming import ownership_tags

__all__ = ["DEFAULT_MODEL_NAME", "LOCAL_CPU", "LOCAL_GPU", "LocalBackend"]


class LocalBackend:
    name = "local"

    def __init__(self, config: HarnessConfig, *, warm_up: bool = True) -> None:
        self.config = config
        self.ws = Workspace.at(config.workspace_dir)
        use_compiler_caches(self.ws.caches)
        self.jobs = Jobs(self.ws)
        self.servers: dict[str, Child] = {}
        self._stop_owned_at_exit = True
        atexit.register(lambda: self.close(self._stop_owned_at_exit))
        # every step, deletions included, needs the MLflow store, which takes seconds to
        # open: the xdist controller (its backend made at session start) can then delete an
        # interrupted run's job at once, before CI's SIGKILL. A one-shot command does not:
        # its first call opens the store anyway, and the sweep of a workspace without one
        # must not create it
        if warm_up:
            threading.Thread(
                target=self.ws.warm_up, name="harness-open-mlflow", daemon=True
            ).start()

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard:
        tags = ownership_tags(self.config.run_id, self.config.resource_ttl_h)
        cache = ModelCache(self.config.model_cache_dir)
        return models.get_foundation_model(self.ws, cache, name, version_or_label, tags)

    def list_model_versions(self, name: str) -> Sequence[RegistryVersion]:
        return models.list_versions(self.ws, name)

    def list_vm_sizes(self) -> Sequence[VmSize]:
        return compute.vm_sizes()

    def component_inputs(self) -> Mapping[str, Mapping[str, Any]]:
        """The pipeline component's inputs plus the local job's own (packing, ...)."""
        return local_component_inputs()

    def ensure_compute(
        self, card: ModelCard, name: str, sku: str | None, tags: Mapping[str, str]
    ) -> Compute:
        return compute.local_compute(card, name, sku, self.config.local_train_processes)

    def submit_finetune(
        self,
        card: ModelCard,
        compute_: Compute,
        data: PreparedData,
        parameters: Mapping[str, Any],
        display_name: str,
        tags: Mapping[str, str],
    ) -> JobRun:
        inputs = job_inputs(self.ws, card, compute_, data, parameters)
        return self.jobs.submit(inputs, display_name, self.config.experiment_name, tags)

    def wait_for_job(self, job: JobRun, timeout_s: float) -> JobRun:
        return self.jobs.wait(job, timeout_s)

    def get_job(self, name: str) -> JobRun:
        return self.jobs.get(name)

    def job_metrics(self, job: JobRun) -> TrainingMetrics:
        return self.jobs.metrics(job)

    def register_model(
        self, card: ModelCard, job: JobRun, tags: Mapping[str, str]
    ) -> RegisteredModel:
        output = Path(self.jobs.spec(job.name).output_dir)
        return models.register_model(self.ws, card, self.jobs.get(job.name), output, tags)

    def begin_create_endpoint(self, name: str, tags: Mapping[str, str]) -> Endpoint:
        """Creating a local endpoint is immediate: a name, a free port and two keys."""
        return endpoints.create(self.ws, name, tags).handle()

    def wait_for_endpoint(self, name: str, timeout_s: float) -> Endpoint:
        return self.get_endpoint(name)

    def get_endpoint(self, name: str) -> Endpoint:
        return endpoints.require(self.ws, name).handle()

    def deploy(
        self,
        endpoint: Endpoint,
        model: RegisteredModel,
        name: str,
        instance_type: str,
        tags: Mapping[str, str],
        timeout_s: float,
    ) -> Deployment:
        handle, proc = deployments.deploy(
            self.ws, endpoint.name, model, name, instance_type, tags, timeout_s
        )
        self.servers[endpoint.name] = proc
        return handle

    def endpoint_key(self, endpoint: Endpoint) -> Secret:
        """The endpoint's primary key, for ``invoke_raw``."""
        return Secret(endpoints.require(self.ws, endpoint.name).keys[0])

    def invoke(
        self, endpoint: Endpoint, deployment: Deployment, request: Mapping[str, Any]
    ) -> ScoringReply:
        return self._score(endpoint, request, self.endpoint_key(endpoint))

    def invoke_raw(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: Secret | str | None
    ) -> ScoringReply:
        return self._score(endpoint, request, Secret.wrap(key))

    def _score(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: Secret | None
    ) -> ScoringReply:
        """POST as a client would (``scoring.score`` diagnoses a server that died)."""
        server = self.servers.get(endpoint.name)
        return scoring.score(
            self.ws,
            endpoint.name,
            endpoint.scoring_uri,
            request,
            key,
            self.config.scoring_timeout_s,
            server,
        )

    def reference_likelihood(
        self,
        foundation: ModelCard,
        finetuned: RegisteredModel,
        conversations: Sequence[Sequence[Mapping[str, str]]],
    ) -> LikelihoodComparison:
        """Both models loaded here, in the harness process: nothing needs deploying."""
        from harness.backends.local.likelihood import compare_models

        base = registry.require_version(self.ws, foundation.name, foundation.version)
        tuned = registry.require_version(self.ws, finetuned.name, finetuned.version)
        plain = [[dict(message) for message in conversation] for conversation in conversations]
        return compare_models(registry.version_dir(base), registry.version_dir(tuned), plain)

    def delete_compute(self, name: str, timeout_s: float) -> None:
        """Nothing to delete: the compute is this machine."""

    def delete_job(self, name: str, timeout_s: float) -> None:
        self.jobs.delete(name, timeout_s)

    def delete_model(self, ref: str, timeout_s: float) -> None:
        models.delete_model(self.ws, ref)

    def delete_endpoint(self, name: str, timeout_s: float) -> None:
        deployments.delete(self.ws, name, timeout_s)
        proc = self.servers.pop(name, None)
        if proc is not None:
            proc.wait()

    def list_owned_resources(self) -> Sequence[OwnedResource]:
        return sweep.owned(self.ws)

    def dead_parts(self) -> list[str]:
        """This run's jobs and deployed servers that died on their own (see
        ``harness.backends.base.dead_parts``): the xdist controller ends the run on one."""
        run_id = self.config.run_id
        return [*self.jobs.died(run_id), *deployments.dead_servers(self.ws, run_id)]

    def close(self, stop_owned: bool) -> None:
        """With ``stop_owned``, stop every job and server this instance started (idempotent).

        The plugin passes False where someone else deletes them later: a pytest-xdist worker
        (the coordinating process deletes the shared resources once every worker is done) and
        ``--keep-resources`` (kept for debugging; tagged, so the sweep finds them).
        """
        self._stop_owned_at_exit = stop_owned
        if not stop_owned:
            return
        problems = []
        stops: list[Callable[[], None]] = [self.jobs.close]
        stops += [partial(self.delete_endpoint, name, STOP_GRACE_S) for name in list(self.servers)]
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
