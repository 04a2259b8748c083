"""The session fixture chain: each fixture makes one decision or creates one resource.

A user replaces any link by defining a fixture of the same name in a conftest (as with
pytest-django's ``django_db_*`` fixtures). Fixtures that create a resource go through the
tracker (``harness.lifecycle``), which registers the deletion before anything can fail and
creates each resource once per run, also under pytest-xdist. Each workflow step is a stage of
``harness_progress``: logged while it runs, recorded for the run report.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from harness import compute, config, finetune_params, model_card, naming
from harness.backends.base import (
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    RegisteredModel,
    ResourceKind,
)
from harness.lifecycle import Register, ResourceTracker
from harness.progress import Progress, is_xdist_worker, quiet_libraries

if TYPE_CHECKING:
    from harness.backends.base import Backend, LikelihoodComparison, TrainingMetrics, VmSize
    from harness.data import PreparedData, ScoringCase
    from harness.model_card import ModelCard
    from harness.scoring import Sample, Samples

log = logging.getLogger("harness")
CONFIG = pytest.StashKey[config.HarnessConfig]()
TRACKER = pytest.StashKey[ResourceTracker]()
PROGRESS = pytest.StashKey[Progress]()


@pytest.fixture(scope="session")
def harness_config(pytestconfig: pytest.Config) -> config.HarnessConfig:
    return pytestconfig.stash[CONFIG]


@pytest.fixture(scope="session")
def harness_resources(pytestconfig: pytest.Config) -> ResourceTracker:
    """Create-once/delete-once bookkeeping (see harness/lifecycle.py)."""
    return pytestconfig.stash[TRACKER]


@pytest.fixture(scope="session")
def harness_progress(pytestconfig: pytest.Config) -> Progress:
    """Progress lines (logger ``harness``) and the run's event record for the report."""
    return pytestconfig.stash[PROGRESS]


@pytest.fixture(scope="session")
def backend(
    pytestconfig: pytest.Config,
    harness_config: config.HarnessConfig,
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Iterator[Backend]:
    """The backend; Azure without settings skips (fails with HARNESS_REQUIRE_LIVE=1)."""
    quiet_libraries()
    with harness_progress.stage("backend", harness_config.backend):
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
    worker = is_xdist_worker(pytestconfig)
    instance.close(stop_owned=not worker and not harness_resources.keep())


@pytest.fixture(scope="session")
def ownership_tags(harness_config: config.HarnessConfig) -> dict[str, str]:
    return naming.ownership_tags(harness_config.run_id, harness_config.resource_ttl_h)


@pytest.fixture(scope="session")
def foundation_model(
    backend: Backend, harness_config: config.HarnessConfig, harness_progress: Progress
) -> ModelCard:
    """The model card; past its fine-tune retirement date a warning (an error with
    --strict-deprecation)."""
    wanted = f"{harness_config.model_name} ({harness_config.model_version})"
    with harness_progress.stage("foundation_model", f"{wanted} from the {backend.name} registry"):
        card = backend.get_foundation_model(harness_config.model_name, harness_config.model_version)
    # no allow-list from the registry: stop here, before anything exists, unless both sizes
    # were chosen explicitly, and then say so in every record of the run
    explicit = compute.explicit_sizes(
        card, harness_config.compute_sku, harness_config.instance_type
    )
    harness_progress.record("model", **card.report_fields(), explicit_sizes=explicit)
    log.info(
        "foundation model %s: %s; %s",
        card.label,
        card.allow_lists_found(),
        card.deprecation.describe(),
    )
    if explicit:
        log.warning("%s: %s", card.label, explicit)
    notice = model_card.retirement_notice(card, harness_config.strict_deprecation)
    if notice:
        log.warning(notice)
        warnings.warn(model_card.RetiredModelWarning(notice), stacklevel=1)
    return card


@pytest.fixture(scope="session")
def region_vm_sizes(backend: Backend) -> tuple[VmSize, ...]:
    """The VM sizes the workspace's region offers; every size choice must be among them."""
    return tuple(backend.list_vm_sizes())


@pytest.fixture(scope="session")
def finetune_compute_sku(
    foundation_model: ModelCard,
    harness_config: config.HarnessConfig,
    region_vm_sizes: tuple[VmSize, ...],
) -> str | None:
    """The SKU asked for, checked (allowed, not retired, offered); None lets the backend take
    the default, which must exist before anything is created."""
    offered = [size.name for size in region_vm_sizes]
    gpus = {size.name: size.gpus for size in region_vm_sizes}
    if harness_config.compute_sku is None:
        compute.default_finetune_sku(foundation_model, offered, gpus=gpus)
    else:
        compute.check_finetune_sku(foundation_model, harness_config.compute_sku, offered)
    return harness_config.compute_sku


@pytest.fixture(scope="session")
def inference_instance_type(
    foundation_model: ModelCard,
    harness_config: config.HarnessConfig,
    region_vm_sizes: tuple[VmSize, ...],
) -> str:
    offered = [size.name for size in region_vm_sizes]
    gpus = {size.name: size.gpus for size in region_vm_sizes}
    return compute.choose_instance_type(
        foundation_model, harness_config.instance_type, offered, gpus=gpus
    )


@pytest.fixture(scope="session")
def finetune_component_inputs(backend: Backend) -> dict[str, Any]:
    return dict(backend.component_inputs())


@pytest.fixture(scope="session")
def finetune_parameters(
    foundation_model: ModelCard,
    finetune_component_inputs: dict[str, Any],
    harness_config: config.HarnessConfig,
    harness_progress: Progress,
) -> finetune_params.ParameterPlan:
    plan = finetune_params.plan_parameters(
        foundation_model,
        harness_config.finetune_overrides,
        finetune_component_inputs,
        harness_config.allow_dropped_params,
    )
    harness_progress.record("parameters", sent=dict(plan.parameters), dropped=dict(plan.dropped))
    return plan


@pytest.fixture(scope="session")
def training_data(
    harness_config: config.HarnessConfig,
    harness_resources: ResourceTracker,
    harness_progress: Progress,
    tmp_path_factory: pytest.TempPathFactory,
) -> PreparedData:
    from harness import data

    def prepare() -> data.PreparedData:
        shared = harness_resources.shared_dir
        out = shared / "data" if shared else tmp_path_factory.mktemp("training-data")
        source = f"{harness_config.dataset} at {harness_config.dataset_percent:g}%"
        with harness_progress.stage("data", source):
            prepared = data.prepare(
                harness_config.dataset,
                harness_config.dataset_percent,
                out,
                allow_invalid=harness_config.allow_invalid_rows,
            )
        harness_progress.record(
            "dataset",
            slices=dict(prepared.counts),
            source=harness_config.dataset,
            percent=harness_config.dataset_percent,
            dropped_rows=len(prepared.dropped),
        )
        return prepared

    return harness_resources.once("training-data", data.PreparedData, prepare)


@pytest.fixture(scope="session")
def scoring_cases(
    training_data: PreparedData, harness_config: config.HarnessConfig
) -> list[ScoringCase]:
    """The test_gen conversations to score, each ending with a user turn, with the reference
    assistant turn that answered it."""
    from harness import data

    return data.scoring_cases(training_data, harness_config.scoring_samples)


@pytest.fixture(scope="session")
def scoring_requests(scoring_cases: list[ScoringCase]) -> list[dict[str, Any]]:
    """One documented chat-completion request per scoring case."""
    from harness import scoring

    return [scoring.build_request(case.messages) for case in scoring_cases]


@pytest.fixture(scope="session")
def harness_preflight(
    foundation_model: ModelCard,
    finetune_compute_sku: str | None,
    inference_instance_type: str,
    finetune_parameters: finetune_params.ParameterPlan,
    training_data: PreparedData,
    scoring_requests: list[dict[str, Any]],
) -> None:
    """Every input decision, made before the first resource is created."""


@pytest.fixture(scope="session")
def finetune_compute(
    backend: Backend,
    foundation_model: ModelCard,
    harness_preflight: None,
    finetune_compute_sku: str | None,
    harness_config: config.HarnessConfig,
    ownership_tags: dict[str, str],
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Iterator[Compute]:
    """The cluster; deleted at the end only when this run created it."""

    def create(register: Register) -> Compute:
        name = harness_config.compute_name
        with harness_progress.stage("compute", f"{name} ({finetune_compute_sku or 'default'})"):
            made = backend.ensure_compute(
                foundation_model, name, finetune_compute_sku, ownership_tags
            )
        if made.created_by_harness:
            register(made.name)
        harness_progress.record("compute", **made.to_dict())
        return made

    with harness_resources.resource(ResourceKind.COMPUTE, Compute, create) as made:
        yield made


@pytest.fixture(scope="session")
def online_endpoint_pending(
    backend: Backend,
    harness_preflight: None,
    harness_config: config.HarnessConfig,
    ownership_tags: dict[str, str],
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Iterator[Endpoint]:
    """Starts the endpoint early: its minutes of provisioning overlap the training."""

    def create(register: Register) -> Endpoint:
        name = naming.endpoint_name(harness_config.run_id)
        register(name)
        harness_progress.begin("endpoint", f"{name}, key auth, overlapping the training")
        started = backend.begin_create_endpoint(name, ownership_tags)
        harness_progress.record("endpoint", **started.to_dict())
        if started.provisioning_state == "Succeeded":
            harness_progress.end("endpoint")
        return started

    with harness_resources.resource(ResourceKind.ENDPOINT, Endpoint, create) as started:
        yield started


@pytest.fixture(scope="session")
def finetune_display_name(
    foundation_model: ModelCard,
    finetune_parameters: finetune_params.ParameterPlan,
    finetune_compute: Compute,
) -> str:
    return finetune_params.display_name(
        foundation_model.name, finetune_parameters.parameters, finetune_compute.gpus_per_node
    )


@pytest.fixture(scope="session")
def finetune_job(
    backend: Backend,
    foundation_model: ModelCard,
    finetune_compute: Compute,
    training_data: PreparedData,
    finetune_parameters: finetune_params.ParameterPlan,
    finetune_display_name: str,
    online_endpoint_pending: Endpoint,
    harness_config: config.HarnessConfig,
    ownership_tags: dict[str, str],
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Iterator[JobRun]:
    """Submits the job and waits for it to end; teardown cancels it if it still runs."""

    def create(register: Register) -> JobRun:
        with harness_progress.stage(
            "finetune_job",
            f"{finetune_display_name} on {finetune_compute.name} ({finetune_compute.sku})",
        ):
            job = backend.submit_finetune(
                foundation_model,
                finetune_compute,
                training_data,
                finetune_parameters.parameters,
                finetune_display_name,
                ownership_tags,
            )
            register(job.name)
            harness_progress.record("job", **job.to_dict())
            try:
                ended = backend.wait_for_job(job, harness_config.job_timeout_s)
            finally:
                _record_job_end(backend, job, harness_progress)
        return ended

    with harness_resources.resource(ResourceKind.JOB, JobRun, create) as job:
        yield job


def _record_job_end(backend: Backend, job: JobRun, progress: Progress) -> None:
    """The job's last known state, also when waiting for it failed."""
    from harness.errors import HarnessError

    try:
        progress.record("job", **backend.get_job(job.name).to_dict())
    except HarnessError:
        progress.record("job", **job.to_dict())


@pytest.fixture(scope="session")
def training_metrics(
    backend: Backend, finetune_job: JobRun, harness_progress: Progress
) -> TrainingMetrics:
    metrics = backend.job_metrics(finetune_job)
    harness_progress.record("metrics", series=metrics.points())
    return metrics


@pytest.fixture(scope="session")
def finetuned_model(
    backend: Backend,
    foundation_model: ModelCard,
    finetune_job: JobRun,
    ownership_tags: dict[str, str],
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Iterator[RegisteredModel]:
    def create(register: Register) -> RegisteredModel:
        with harness_progress.stage("register", f"the output of job {finetune_job.name}"):
            model = backend.register_model(foundation_model, finetune_job, ownership_tags)
        register(model.ref)
        harness_progress.record("registered_model", **model.to_dict())
        return model

    with harness_resources.resource(ResourceKind.MODEL, RegisteredModel, create) as model:
        yield model


@pytest.fixture(scope="session")
def online_endpoint(
    backend: Backend,
    online_endpoint_pending: Endpoint,
    harness_config: config.HarnessConfig,
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Endpoint:
    """The endpoint once provisioned (any worker may wait; the creator's poller is faster)."""
    if online_endpoint_pending.provisioning_state == "Succeeded":  # created at once (local)
        return online_endpoint_pending

    def ready() -> Endpoint:
        try:
            endpoint = backend.wait_for_endpoint(
                online_endpoint_pending.name, harness_config.endpoint_timeout_s
            )
        except BaseException as exc:
            harness_progress.end("endpoint", "failed", f"{type(exc).__name__}: {exc}"[:500])
            raise
        harness_progress.end("endpoint")
        harness_progress.record("endpoint", **endpoint.to_dict())
        return endpoint

    return harness_resources.once("endpoint-ready", Endpoint, ready)


@pytest.fixture(scope="session")
def deployment(
    backend: Backend,
    online_endpoint: Endpoint,
    finetuned_model: RegisteredModel,
    inference_instance_type: str,
    harness_config: config.HarnessConfig,
    ownership_tags: dict[str, str],
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Deployment:
    """Deploys the model behind the endpoint; deleted with the endpoint."""

    def deploy() -> Deployment:
        name = naming.deployment_name(harness_config.run_id)
        harness_progress.record(
            "deployment",
            name=name,
            endpoint_name=online_endpoint.name,
            instance_type=inference_instance_type,
            instance_count=1,
            provisioning_state="Creating",
            model_id=finetuned_model.id,
        )
        with harness_progress.stage(
            "deployment", f"{finetuned_model.ref} as {name} on {inference_instance_type}"
        ):
            made = backend.deploy(
                online_endpoint,
                finetuned_model,
                name,
                inference_instance_type,
                ownership_tags,
                harness_config.deployment_timeout_s,
            )
        harness_progress.record("deployment", **made.to_dict())
        return made

    return harness_resources.once("deployment", Deployment, deploy)


@pytest.fixture(scope="session")
def scored_samples(
    backend: Backend,
    online_endpoint: Endpoint,
    deployment: Deployment,
    scoring_cases: list[ScoringCase],
    scoring_requests: list[dict[str, Any]],
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> Samples:
    """Every scoring request sent once, through the backend as the notebook does; each answer,
    error, status and latency kept for the tests and recorded for the report."""
    from harness import scoring

    def score() -> scoring.Samples:
        with harness_progress.stage("scoring", f"{len(scoring_requests)} test_gen samples"):
            samples = tuple(
                _score(backend, online_endpoint, deployment, i, case, request)
                for i, (case, request) in enumerate(
                    zip(scoring_cases, scoring_requests, strict=True)
                )
            )
        for sample in samples:
            harness_progress.record("sample", **scoring.report_fields(sample))
        return scoring.Samples(samples)

    return harness_resources.once("scored-samples", scoring.Samples, score)


def _score(
    backend: Backend,
    endpoint: Endpoint,
    deployment: Deployment,
    index: int,
    case: ScoringCase,
    request: dict[str, Any],
) -> Sample:
    """One request: its reply parsed, or why it failed, never an exception."""
    from harness import scoring
    from harness.errors import ScoringError

    try:
        reply = backend.invoke(endpoint, deployment, request)
    except ScoringError as exc:
        return scoring.Sample(index, case.messages, case.reference, 0, "", 0.0, error=str(exc))
    try:
        answer, error = scoring.parse_response(reply.body, reply.status_code).text, ""
    except ScoringError as exc:  # the status's meaning, as the service put it, comes first
        answer, error = "", f"{reply.reason}: {exc}" if reply.reason else str(exc)
    return scoring.Sample(
        index,
        case.messages,
        case.reference,
        reply.status_code,
        reply.body,
        reply.elapsed_s,
        answer,
        error,
    )


@pytest.fixture(scope="session")
def reference_likelihood(
    backend: Backend,
    foundation_model: ModelCard,
    finetuned_model: RegisteredModel,
    training_data: PreparedData,
    harness_resources: ResourceTracker,
    harness_progress: Progress,
) -> LikelihoodComparison | None:
    """Foundation vs fine-tuned model on the test_gen references, where the backend can
    load both models itself (None elsewhere)."""
    from harness import data

    conversations = [row["messages"] for row in data.read_jsonl(training_data.files["test_gen"])]
    with harness_progress.stage(
        "reference_likelihood", f"{len(conversations)} test_gen conversations, both models"
    ):
        found = backend.reference_likelihood(foundation_model, finetuned_model, conversations)
    for figure in found.figures() if found is not None else []:
        harness_progress.record("figure", **figure)
    return found
