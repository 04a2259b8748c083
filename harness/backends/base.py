"""The workflow's steps as one protocol, and the small handles passed between them.

Handles are frozen dataclasses of plain values so that they can be written to the shared state
file under pytest-xdist and read back by another process (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from harness.data import PreparedData
    from harness.tags import ModelCard

JOB_IN_PROGRESS = frozenset(
    {"NotStarted", "Queued", "Preparing", "Provisioning", "Starting", "Running",
     "CancelRequested", "Finalizing", "Scheduled", "Unknown"}
)
JOB_TERMINAL = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "Paused"})

T = TypeVar("T", bound="Handle")


class Handle:
    """Mixin: a dataclass handle that round-trips through JSON-compatible dicts."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Compute(Handle):
    name: str
    sku: str
    gpus_per_node: int
    created_by_harness: bool = False
    provisioning_state: str = "Succeeded"


@dataclass(frozen=True)
class JobRun(Handle):
    name: str
    display_name: str
    status: str
    url: str  # studio URL on Azure, the job's log file locally
    experiment: str = ""
    error: str = ""


@dataclass(frozen=True)
class TrainingMetrics(Handle):
    series: dict[str, list[float]] = field(default_factory=dict)  # metric -> values by step

    def values(self, name: str) -> list[float]:
        return list(self.series.get(name, []))


@dataclass(frozen=True)
class RegisteredModel(Handle):
    name: str
    version: str
    id: str
    job_name: str  # lineage: the job whose output this model is
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint(Handle):
    name: str
    scoring_uri: str
    auth_mode: str
    provisioning_state: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment(Handle):
    name: str
    endpoint_name: str
    model_id: str
    instance_type: str
    provisioning_state: str
    traffic_percent: int
    request_timeout_ms: int


@dataclass(frozen=True)
class ScoringReply(Handle):
    status_code: int
    body: str
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class OwnedResource(Handle):
    """A resource found by its ownership tags, for the sweep."""

    kind: str  # "endpoint", "deployment", "compute", "model", "job", "server"
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    detail: str = ""


class EndpointPoller(Protocol):
    """A started endpoint creation; ``result`` waits for it with a deadline."""

    def done(self) -> bool: ...

    def result(self, timeout_s: float) -> Endpoint: ...


@runtime_checkable
class Backend(Protocol):
    """The workflow's steps. Every creating step takes the ownership tags to stamp on it."""

    name: str
    # How long a deletion is waited on. Teardown after Ctrl-C or SIGTERM lowers it: every
    # deletion is then started and, if slow, left running for the sweep to finish.
    delete_timeout_s: float

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard: ...

    def component_inputs(self) -> Mapping[str, Mapping[str, Any]]: ...

    def ensure_compute(
        self, card: ModelCard, name: str, sku: str | None, tags: Mapping[str, str]
    ) -> Compute: ...

    def submit_finetune(
        self,
        card: ModelCard,
        compute: Compute,
        data: PreparedData,
        parameters: Mapping[str, Any],
        display_name: str,
        tags: Mapping[str, str],
    ) -> JobRun: ...

    def wait_for_job(self, job: JobRun, timeout_s: float) -> JobRun: ...

    def cancel_job(self, job: JobRun) -> None: ...

    def delete_job(self, job: JobRun) -> None:
        """Cancel the job if it still runs and free what it holds (teardown)."""

    def job_metrics(self, job: JobRun) -> TrainingMetrics: ...

    def register_model(
        self, card: ModelCard, job: JobRun, tags: Mapping[str, str]
    ) -> RegisteredModel: ...

    def begin_create_endpoint(self, name: str, tags: Mapping[str, str]) -> EndpointPoller: ...

    def deploy(
        self,
        endpoint: Endpoint,
        model: RegisteredModel,
        name: str,
        instance_type: str,
        tags: Mapping[str, str],
        timeout_s: float,
    ) -> Deployment: ...

    def get_endpoint(self, name: str) -> Endpoint: ...

    def invoke(
        self, endpoint: Endpoint, deployment: Deployment, request: Mapping[str, Any]
    ) -> ScoringReply: ...

    def endpoint_key(self, endpoint: Endpoint) -> str: ...

    def invoke_raw(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: str | None
    ) -> ScoringReply: ...

    def delete_endpoint(self, name: str) -> None: ...

    def delete_model(self, model: RegisteredModel) -> None: ...

    def delete_compute(self, compute: Compute) -> None: ...

    def list_owned_resources(self) -> Sequence[OwnedResource]: ...

    def delete_resource(self, resource: OwnedResource) -> None: ...

    def close(self) -> None: ...
