"""The pytest plugin: options, report header, signals, and the session fixture chain.

Thin on purpose: each fixture makes one decision or creates one resource through the backend,
so a user can replace any link by defining a fixture of the same name in a conftest.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from harness import compute, config, finetune, hooks, naming
from harness.errors import ConfigError
from harness.lifecycle import EndpointWatcher, ResourceTracker

if TYPE_CHECKING:
    from harness.backends.base import (
        Backend,
        Compute,
        Deployment,
        Endpoint,
        EndpointPoller,
        JobRun,
        RegisteredModel,
        TrainingMetrics,
    )
    from harness.data import PreparedData
    from harness.tags import ModelCard

CONFIG = pytest.StashKey["config.HarnessConfig"]()
TRACKER = pytest.StashKey[ResourceTracker]()
SIGTERM = pytest.StashKey[Any]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    config.add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[CONFIG] = _resolve(config)
    shared = getattr(config, "workerinput", {}).get("harness_shared_dir")
    if shared is None and _is_coordinator(config):
        shared = tempfile.mkdtemp(prefix="harness-shared-")
    config.stash[TRACKER] = ResourceTracker(shared_dir=Path(shared) if shared else None)
    config.pluginmanager.register(_InterruptWatch(config.stash[TRACKER]), "harness-interrupts")
    config.stash[SIGTERM] = _handle_sigterm_as_interrupt()


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(SIGTERM, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _resolve(pytest_config: pytest.Config) -> config.HarnessConfig:
    """Options > env > ini > defaults; xdist workers take the coordinator's run id.

    A workspace the user named is checked here, so a file or a read-only directory fails in
    a second instead of after collection; the default is checked only by the local backend,
    so that loading the plugin never fails an unrelated pytest run."""
    run_id = getattr(pytest_config, "workerinput", {}).get("harness_run_id")
    if run_id and pytest_config.getoption("harness_run_id") is None:
        pytest_config.option.harness_run_id = run_id
    try:
        resolved = config.from_pytest(pytest_config)
        if not resolved.sources["workspace_dir"].startswith("default"):
            config.check_workspace(resolved)  # the default is checked when the backend starts
        return resolved
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _is_coordinator(pytest_config: pytest.Config) -> bool:
    """True in the xdist controller process (``-n N`` with N workers)."""
    return bool(getattr(pytest_config.option, "numprocesses", None)) and not hasattr(
        pytest_config, "workerinput")


def _handle_sigterm_as_interrupt() -> Any:
    """SIGTERM (CI cancelling the job) runs the same teardown as Ctrl-C; returns the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the run id and the state directory."""
    node.workerinput["harness_run_id"] = node.config.stash[CONFIG].run_id
    node.workerinput["harness_shared_dir"] = str(node.config.stash[TRACKER].shared_dir)


class _InterruptWatch:
    """Ctrl-C or SIGTERM: the teardown that follows hurries (see ResourceTracker.delete)."""

    def __init__(self, tracker: ResourceTracker) -> None:
        self.tracker = tracker

    def pytest_keyboard_interrupt(self) -> None:
        self.tracker.interrupted = True


def pytest_sessionstart(session: pytest.Session) -> None:
    """``--keep-resources`` keeps what a run created only when something failed."""
    cfg = session.config.stash[CONFIG]
    session.config.stash[TRACKER].keep = lambda: cfg.keep_resources and session.testsfailed > 0


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[CONFIG].header_lines()


@pytest.hookimpl(trylast=True)
def pytest_harness_create_backend(harness_config: config.HarnessConfig) -> Backend:
    from harness.backends import create_backend

    return create_backend(harness_config)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Coordinator: delete what the workers recorded, after the last one is done."""
    tracker = session.config.stash[TRACKER]
    if _is_coordinator(session.config) and tracker.shared_dir is not None:
        if tracker.recorded():
            cfg = session.config.stash[CONFIG]
            backend = session.config.hook.pytest_harness_create_backend(harness_config=cfg)
            tracker.delete_recorded(backend)
            backend.close()
        shutil.rmtree(tracker.shared_dir, ignore_errors=True)
    if tracker.problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tracker = config.stash[TRACKER]
    for line in tracker.problems:
        terminalreporter.write_line(f"harness teardown FAILED: {line}", red=True)
    if tracker.problems:
        terminalreporter.write_line("run `python -m harness sweep` to delete leftovers", red=True)
    for line in tracker.kept:
        terminalreporter.write_line(f"harness kept (--keep-resources): {line}", yellow=True)


# -- the session fixture chain ----------------------------------------------------------------


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
    instance = pytestconfig.hook.pytest_harness_create_backend(harness_config=harness_config)
    harness_resources.backend = instance
    yield instance
    instance.close()


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
    return finetune.plan_parameters(foundation_model, harness_config.finetune_overrides,
                                    finetune_component_inputs,
                                    harness_config.allow_dropped_params)


@pytest.fixture(scope="session")
def training_data(harness_config: config.HarnessConfig, harness_resources: ResourceTracker,
                  tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    from harness import data

    def prepare() -> dict[str, Any]:
        shared = harness_resources.shared_dir
        out = shared / "data" if shared else tmp_path_factory.mktemp("training-data")
        return data.prepare(harness_config.dataset, harness_config.dataset_percent, out,
                            allow_invalid=harness_config.allow_invalid_rows).to_dict()

    return data.PreparedData.from_dict(harness_resources.once("training-data", prepare))


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
    from harness.backends.base import Compute

    def create(register: Any) -> Compute:
        made = backend.ensure_compute(foundation_model, harness_config.compute_name,
                                      finetune_compute_sku, ownership_tags)
        if made.created_by_harness:
            register(made.to_dict())
        return made

    with harness_resources.resource("compute", "compute", create) as made:
        yield Compute.from_dict(made)


@pytest.fixture(scope="session")
def online_endpoint_pending(backend: Backend, harness_preflight: None,
                            harness_config: config.HarnessConfig, ownership_tags: dict[str, str],
                            harness_resources: ResourceTracker) -> Iterator[EndpointPoller]:
    """Starts the endpoint early: its minutes of provisioning overlap the training."""
    def create(register: Any) -> dict[str, str]:
        name = naming.endpoint_name(harness_config.run_id)
        register({"name": name})
        harness_resources.pollers[name] = backend.begin_create_endpoint(name, ownership_tags)
        return {"name": name}

    with harness_resources.resource("endpoint", "endpoint", create) as started:
        yield harness_resources.pollers.get(started["name"]) or EndpointWatcher(
            backend, started["name"])


@pytest.fixture(scope="session")
def finetune_display_name(foundation_model: ModelCard, finetune_parameters: finetune.ParameterPlan,
                          finetune_compute: Compute) -> str:
    return finetune.display_name(foundation_model.name, finetune_parameters.parameters,
                                 finetune_compute.gpus_per_node)


@pytest.fixture(scope="session")
def finetune_job(backend: Backend, foundation_model: ModelCard, finetune_compute: Compute,
                 training_data: PreparedData, finetune_parameters: finetune.ParameterPlan,
                 finetune_display_name: str, online_endpoint_pending: EndpointPoller,
                 harness_config: config.HarnessConfig, ownership_tags: dict[str, str],
                 harness_resources: ResourceTracker) -> Iterator[JobRun]:
    """Submits the job and waits for a terminal state; teardown cancels it if still running."""
    from harness.backends.base import JobRun

    def create(register: Any) -> JobRun:
        job = backend.submit_finetune(foundation_model, finetune_compute, training_data,
                                      finetune_parameters.parameters, finetune_display_name,
                                      ownership_tags)
        register(job.to_dict())
        return backend.wait_for_job(job, harness_config.job_timeout_s)

    with harness_resources.resource("job", "job", create) as job:
        yield JobRun.from_dict(job)


@pytest.fixture(scope="session")
def training_metrics(backend: Backend, finetune_job: JobRun) -> TrainingMetrics:
    return backend.job_metrics(finetune_job)


@pytest.fixture(scope="session")
def finetuned_model(backend: Backend, foundation_model: ModelCard, finetune_job: JobRun,
                    ownership_tags: dict[str, str], harness_resources: ResourceTracker
                    ) -> Iterator[RegisteredModel]:
    from harness.backends.base import RegisteredModel

    def create(register: Any) -> RegisteredModel:
        model = backend.register_model(foundation_model, finetune_job, ownership_tags)
        register(model.to_dict())
        return model

    with harness_resources.resource("model", "model", create) as model:
        yield RegisteredModel.from_dict(model)


@pytest.fixture(scope="session")
def online_endpoint(online_endpoint_pending: EndpointPoller,
                    harness_config: config.HarnessConfig, harness_resources: ResourceTracker
                    ) -> Endpoint:
    from harness.backends.base import Endpoint

    ready = harness_resources.once("endpoint-ready", lambda: online_endpoint_pending.result(
        harness_config.endpoint_timeout_s).to_dict())
    return Endpoint.from_dict(ready)


@pytest.fixture(scope="session")
def deployment(backend: Backend, online_endpoint: Endpoint, finetuned_model: RegisteredModel,
               inference_instance_type: str, harness_config: config.HarnessConfig,
               ownership_tags: dict[str, str], harness_resources: ResourceTracker) -> Deployment:
    """Deploys the model behind the endpoint; deleted with the endpoint."""
    from harness.backends.base import Deployment

    made = harness_resources.once("deployment", lambda: backend.deploy(
        online_endpoint, finetuned_model, naming.deployment_name(harness_config.run_id),
        inference_instance_type, ownership_tags, harness_config.deployment_timeout_s).to_dict())
    return Deployment.from_dict(made)


@pytest.fixture(scope="session")
def scoring_requests(training_data: PreparedData, harness_config: config.HarnessConfig
                     ) -> list[dict[str, Any]]:
    """One documented chat-completion request per test_gen sample, ending with a user turn."""
    from harness import data, scoring

    samples = data.scoring_samples(training_data, harness_config.scoring_samples)
    return [scoring.build_request(messages) for messages in samples]
