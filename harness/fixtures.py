"""The session fixture chain: each fixture makes one decision or creates one resource.

A user replaces any link by defining a fixture of the same name in a conftest (as with
pytest-django's ``django_db_*`` fixtures). Fixtures that create a resource go through the
tracker (``harness.lifecycle``), which registers the deletion before anything can fail and
creates each resource once per run, also under pytest-xdist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from harness import compute, config, finetune, naming
from harness.backends.base import (
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    RegisteredModel,
    ResourceKind,
)
from harness.lifecycle import Register, ResourceTracker

if TYPE_CHECKING:
    from harness.backends.base import Backend, TrainingMetrics
    from harness.data import PreparedData
    from harness.tags import ModelCard

CONFIG = pytest.StashKey[config.HarnessConfig]()
TRACKER = pytest.StashKey[ResourceTracker]()


@pytest.fixture(scope="session")
def harness_config(pytestconfig: pytest.Config) -> config.HarnessConfig:
    return pytestconfig.stash[CONFIG]


@pytest.fixture(scope="session")
def harness_resources(pytestconfig: pytest.Config) -> ResourceTracker:
    """Create-once/delete-once bookkeeping (see harness/lifecycle.py)."""
    return pytestconfig.stash[TRACKER]


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config, harness_config: config.HarnessConfig,
            harness_resources: ResourceTracker) -> Iterator[Backend]:
    """The backend; Azure without settings skips (fails with HARNESS_REQUIRE_LIVE=1)."""
    missing = harness_config.missing_azure_settings()
    if missing:
        message = "--backend azure needs " + "; ".join(missing)
        if harness_config.require_live:
            pytest.fail(f"{message} (HARNESS_REQUIRE_LIVE is set)", pytrace=False)
        pytest.skip(message)
    harness_resources.hold_run()  # before anything exists: the sweep spares a live run
    instance = pytestconfig.hook.pytest_harness_create_backend(harness_config=harness_config)
    harness_resources.backend = instance
    yield instance
    # an xdist worker leaves what it started to the coordinator, --keep-resources to the sweep
    worker = hasattr(pytestconfig, "workerinput")
    instance.close(stop_owned=not worker and not harness_resources.keep())


@pytest.fixture(scope="session")
def ownership_tags(harness_config: config.HarnessConfig) -> dict[str, str]:
    return naming.ownership_tags(harness_config.run_id, harness_config.resource_ttl_h)


@pytest.fixture(scope="session")
def foundation_model(backend: Backend, harness_config: config.HarnessConfig) -> ModelCard:
    return backend.get_foundation_model(harness_config.model_name, harness_config.model_version)


@pytest.fixture(scope="session")
def finetune_compute_sku(foundation_model: ModelCard, harness_config: config.HarnessConfig
                         ) -> str | None:
    """The SKU asked for, checked against the model; None lets the backend choose."""
    if harness_config.compute_sku is not None:
        compute.check_finetune_sku(foundation_model, harness_config.compute_sku)
    return harness_config.compute_sku


@pytest.fixture(scope="session")
def inference_instance_type(foundation_model: ModelCard, harness_config: config.HarnessConfig
                            ) -> str:
    return compute.choose_instance_type(foundation_model, harness_config.instance_type)


@pytest.fixture(scope="session")
def finetune_component_inputs(backend: Backend) -> dict[str, Any]:
    return dict(backend.component_inputs())


@pytest.fixture(scope="session")
def finetune_parameters(foundation_model: ModelCard, finetune_component_inputs: dict[str, Any],
                        harness_config: config.HarnessConfig) -> finetune.ParameterPlan:
    merged = finetune.merge_parameters(foundation_model, harness_config.finetune_overrides)
    return finetune.fit_to_component(merged, finetune_component_inputs)


@pytest.fixture(scope="session")
def training_data(harness_config: config.HarnessConfig, harness_resources: ResourceTracker,
                  tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    from harness import data

    def prepare() -> data.PreparedData:
        shared = harness_resources.shared_dir
        out = shared / "data" if shared else tmp_path_factory.mktemp("training-data")
        return data.prepare(harness_config.dataset, harness_config.dataset_percent, out,
                            allow_invalid=harness_config.allow_invalid_rows)

    return harness_resources.once("training-data", data.PreparedData, prepare)


@pytest.fixture(scope="session")
def harness_preflight(foundation_model: ModelCard, finetune_compute_sku: str | None,
                      inference_instance_type: str, finetune_parameters: finetune.ParameterPlan,
                      training_data: PreparedData, scoring_requests: list[dict[str, Any]]
                      ) -> None:
    """Every input decision, made before the first resource is created."""


@pytest.fixture(scope="session")
def finetune_compute(backend: Backend, foundation_model: ModelCard, harness_preflight: None,
                     finetune_compute_sku: str | None, harness_config: config.HarnessConfig,
                     ownership_tags: dict[str, str], harness_resources: ResourceTracker
                     ) -> Iterator[Compute]:
    """The cluster; deleted at the end only when this run created it."""
    def create(register: Register) -> Compute:
        made = backend.ensure_compute(foundation_model, harness_config.compute_name,
                                      finetune_compute_sku, ownership_tags)
        if made.created_by_harness:
            register(made.name)
        return made

    with harness_resources.resource(ResourceKind.COMPUTE, Compute, create) as made:
        yield made


@pytest.fixture(scope="session")
def online_endpoint_pending(backend: Backend, harness_preflight: None,
                            harness_config: config.HarnessConfig, ownership_tags: dict[str, str],
                            harness_resources: ResourceTracker) -> Iterator[Endpoint]:
    """Starts the endpoint early: its minutes of provisioning overlap the training."""
    def create(register: Register) -> Endpoint:
        name = naming.endpoint_name(harness_config.run_id)
        register(name)
        return backend.begin_create_endpoint(name, ownership_tags)

    with harness_resources.resource(ResourceKind.ENDPOINT, Endpoint, create) as started:
        yield started


@pytest.fixture(scope="session")
def finetune_display_name(foundation_model: ModelCard, finetune_parameters: finetune.ParameterPlan,
                          finetune_compute: Compute) -> str:
    return finetune.display_name(foundation_model.name, finetune_parameters.parameters,
                                 finetune_compute.gpus_per_node)


@pytest.fixture(scope="session")
def finetune_job(backend: Backend, foundation_model: ModelCard, finetune_compute: Compute,
                 training_data: PreparedData, finetune_parameters: finetune.ParameterPlan,
                 finetune_display_name: str, online_endpoint_pending: Endpoint,
                 harness_config: config.HarnessConfig, ownership_tags: dict[str, str],
                 harness_resources: ResourceTracker) -> Iterator[JobRun]:
    """Submits the job and waits for it to end; teardown cancels it if it still runs.

    Submitting and waiting are shared apart: if the xdist worker that submitted the job dies
    while it runs, another worker waits for that job instead of submitting a second one.
    """
    def create(register: Register) -> JobRun:
        job = backend.submit_finetune(foundation_model, finetune_compute, training_data,
                                      finetune_parameters.parameters, finetune_display_name,
                                      ownership_tags)
        register(job.name)
        return job

    with harness_resources.resource(ResourceKind.JOB, JobRun, create) as submitted:
        yield harness_resources.once("job-finished", JobRun, lambda: backend.wait_for_job(
            submitted, harness_config.job_timeout_s))


@pytest.fixture(scope="session")
def training_metrics(backend: Backend, finetune_job: JobRun) -> TrainingMetrics:
    return backend.job_metrics(finetune_job)


@pytest.fixture(scope="session")
def finetuned_model(backend: Backend, foundation_model: ModelCard, finetune_job: JobRun,
                    ownership_tags: dict[str, str], harness_resources: ResourceTracker
                    ) -> Iterator[RegisteredModel]:
    def create(register: Register) -> RegisteredModel:
        model = backend.register_model(foundation_model, finetune_job, ownership_tags)
        register(model.ref)
        return model

    with harness_resources.resource(ResourceKind.MODEL, RegisteredModel, create) as model:
        yield model


@pytest.fixture(scope="session")
def online_endpoint(backend: Backend, online_endpoint_pending: Endpoint,
                    harness_config: config.HarnessConfig, harness_resources: ResourceTracker
                    ) -> Endpoint:
    """The endpoint once provisioned (any worker may wait; the creator's poller is faster)."""
    return harness_resources.once("endpoint-ready", Endpoint, lambda: backend.wait_for_endpoint(
        online_endpoint_pending.name, harness_config.endpoint_timeout_s))


@pytest.fixture(scope="session")
def deployment(backend: Backend, online_endpoint: Endpoint, finetuned_model: RegisteredModel,
               inference_instance_type: str, harness_config: config.HarnessConfig,
               ownership_tags: dict[str, str], harness_resources: ResourceTracker) -> Deployment:
    """Deploys the model behind the endpoint; deleted with the endpoint."""
    return harness_resources.once("deployment", Deployment, lambda: backend.deploy(
        online_endpoint, finetuned_model, naming.deployment_name(harness_config.run_id),
        inference_instance_type, ownership_tags, harness_config.deployment_timeout_s))


@pytest.fixture(scope="session")
def scoring_requests(training_data: PreparedData, harness_config: config.HarnessConfig
                     ) -> list[dict[str, Any]]:
    """One documented chat-completion request per test_gen sample, ending with a user turn."""
    from harness import data, scoring

    samples = data.scoring_samples(training_data, harness_config.scoring_samples)
    return [scoring.build_request(messages) for messages in samples]
