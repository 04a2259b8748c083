"""The workflow's steps as one protocol, the small handles passed between them, and the rules
both backends share (states, resource kinds, the fine-tuned model's name, the request timeout).

Handles are frozen dataclasses of plain values so that they can be written to the shared state
file under pytest-xdist and read back by another process (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from harness.data import PreparedData
    from harness.model_card import ModelCard

# Only these end a job. The service's REST enum says NotResponding can go back to any earlier
# state, and Unknown is not an end either: azure-ai-ml lists NotResponding and Paused as
# terminal, which is wrong for a waiting loop (see azureml-facts.md, corrections 4).
JOB_FINAL = frozenset({"Completed", "Failed", "Canceled"})
ENDPOINT_SETTLED = frozenset({"Succeeded", "Failed", "Canceled"})
REQUEST_TIMEOUT_MS = 90_000  # the notebook's OnlineRequestSettings(request_timeout_ms=90000)
FINETUNED_SUFFIX = "-ultrachat-200k"
# The compute of a serverless fine-tune: the service picks and runs it, there is nothing to check.
SERVERLESS_COMPUTE = "serverless"


def finetuned_model_name(foundation: str) -> str:
    """The registered name of a fine-tuned model: the notebook's ``{model}-ultrachat-200k``."""
    return f"{foundation}{FINETUNED_SUFFIX}".replace("/", "-")


@dataclass(frozen=True)
class RegistryVersion:
    """One version as the registry lists it."""

    version: str
    archived: bool = False
    deprecation: Mapping[str, str] = field(default_factory=dict)  # fact -> date


@dataclass(frozen=True)
class Likelihood:
    """Mean log-likelihood per reference token (nats; closer to 0 is better)."""

    mean: float
    tokens: int
    conversations: int


@dataclass(frozen=True)
class LikelihoodComparison:
    foundation: Likelihood
    finetuned: Likelihood

    @property
    def improved(self) -> bool:
        return self.finetuned.mean > self.foundation.mean

    def figures(self) -> list[dict[str, Any]]:
        """Fields of the report's ``figure`` events for both models."""
        return [
            {
                "name": f"log_likelihood_{which}",
                "value": result.mean,
                "unit": "nats/token",
                "better": "higher",
                "description": f"mean log-likelihood of the {result.tokens} "
                f"reference assistant tokens of {result.conversations} test_gen conversations, "
                f"{which} model",
            }
            for which, result in (("foundation", self.foundation), ("finetuned", self.finetuned))
        ]


class Secret:
    """A credential (an endpoint key) that never shows itself.

    pytest prints the arguments of every frame of a failing test's traceback, and ``repr``
    reaches logs and JUnit XML: both print a mask here. ``reveal()`` is the one way to the
    value, called only where the key is sent.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(Secret)

    @classmethod
    def wrap(cls, value: Secret | str | None) -> Secret | None:
        """A key as callers pass it (a wrong key may be plain text) in a Secret; None stays."""
        return value if value is None or isinstance(value, Secret) else cls(value)


class ResourceKind(str, Enum):  # noqa: UP042 (StrEnum changes what str() and f-strings print)
    """What the harness creates and deletes; the sweep and the tracker speak these."""

    COMPUTE = "compute"
    JOB = "job"
    MODEL = "model"
    ENDPOINT = "endpoint"


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
class VmSize(Handle):
    """A VM size the workspace's region offers (Azure: ``compute.list_sizes()``)."""

    name: str
    gpus: int = 0
    vcpus: int = 0
    family: str = ""  # the quota family, e.g. standardNCADSA100v4Family


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
    steps: dict[str, list[int]] = field(default_factory=dict)  # metric -> the values' steps

    def values(self, name: str) -> list[float]:
        return list(self.series.get(name, []))

    def points(self) -> dict[str, list[list[float]]]:
        """Every metric as [[step, value], ...] (the value's index where no step is known)."""
        return {
            name: [
                [float(step), value]
                for step, value in zip(
                    self.steps.get(name) or range(len(values)), values, strict=False
                )
            ]
            for name, values in self.series.items()
        }


@dataclass(frozen=True)
class RegisteredModel(Handle):
    name: str
    version: str
    id: str
    job_name: str  # lineage: the job whose output this model is, as the service reports it
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name:version``: how deletion and the sweep name a model version."""
        return f"{self.name}:{self.version}"


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
    reason: str = ""  # what the status means, in the service's words where it gives them

    def summary(self, chars: int = 500) -> str:
        """Status, reason and the start of the body: what a failed test must show."""
        reason = f" ({self.reason})" if self.reason else ""
        return f"HTTP {self.status_code}{reason}: {self.body[:chars]!r}"


@dataclass(frozen=True)
class OwnedResource(Handle):
    """A resource found by its ownership tags, for the sweep."""

    kind: ResourceKind
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    detail: str = ""


@runtime_checkable
class Backend(Protocol):
    """The workflow's steps. Every creating step takes the ownership tags to stamp on it;
    every deletion takes how long it may wait (teardown after Ctrl-C waits less)."""

    name: str

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard: ...

    def list_model_versions(self, name: str) -> Sequence[RegistryVersion]:
        """Every version of foundation model ``name`` the registry holds, archived ones too."""

    def list_vm_sizes(self) -> Sequence[VmSize]:
        """The VM sizes the workspace's region offers: defaults and explicit choices must be
        among them before anything is created."""

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

    def get_job(self, name: str) -> JobRun: ...

    def job_metrics(self, job: JobRun) -> TrainingMetrics: ...

    def register_model(
        self, card: ModelCard, job: JobRun, tags: Mapping[str, str]
    ) -> RegisteredModel: ...

    def begin_create_endpoint(self, name: str, tags: Mapping[str, str]) -> Endpoint:
        """Start creating the endpoint and return at once (it overlaps the training)."""

    def wait_for_endpoint(self, name: str, timeout_s: float) -> Endpoint:
        """Wait until the endpoint is ready; works in any process, not only the creator."""

    def get_endpoint(self, name: str) -> Endpoint: ...

    def deploy(
        self,
        endpoint: Endpoint,
        model: RegisteredModel,
        name: str,
        instance_type: str,
        tags: Mapping[str, str],
        timeout_s: float,
    ) -> Deployment: ...

    def invoke(
        self, endpoint: Endpoint, deployment: Deployment, request: Mapping[str, Any]
    ) -> ScoringReply: ...

    def endpoint_key(self, endpoint: Endpoint) -> Secret: ...

    def invoke_raw(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: Secret | str | None
    ) -> ScoringReply:
        """POST as a plain client would; ``key=None`` sends no key, a str is a wrong key."""

    def reference_likelihood(
        self,
        foundation: ModelCard,
        finetuned: RegisteredModel,
        conversations: Sequence[Sequence[Mapping[str, str]]],
    ) -> LikelihoodComparison | None:
        """Both models' log-likelihood of the reference assistant turns, or None where the
        backend cannot compute it without deploying the foundation model (Azure)."""

    def delete_compute(self, name: str, timeout_s: float) -> None: ...

    def delete_job(self, name: str, timeout_s: float) -> None:
        """Cancel the job unless it ended, and free what it holds."""

    def delete_model(self, ref: str, timeout_s: float) -> None:
        """Delete (or archive) the model version ``name:version``."""

    def delete_endpoint(self, name: str, timeout_s: float) -> None: ...

    def list_owned_resources(self) -> Sequence[OwnedResource]: ...

    def close(self, stop_owned: bool) -> None:
        """Release clients; with ``stop_owned``, also stop what this instance still runs."""


def delete_resource(backend: Backend, kind: ResourceKind, name: str, timeout_s: float) -> None:
    """Delete one resource by kind: the one dispatch the tracker and the sweep share."""
    deleters: Mapping[ResourceKind, Callable[[str, float], None]] = {
        ResourceKind.COMPUTE: backend.delete_compute,
        ResourceKind.JOB: backend.delete_job,
        ResourceKind.MODEL: backend.delete_model,
        ResourceKind.ENDPOINT: backend.delete_endpoint,
    }
    deleters[ResourceKind(kind)](name, timeout_s)


def dead_parts(backend: Backend) -> list[str]:
    """What ``backend.dead_parts()`` finds of the run's processes that died on their own, each
    in a line naming it, how it ended and its log; an optional step, for a backend that runs
    them itself (local). Elsewhere nothing: Azure reports a failed job or deployment in its
    own states, and a user's backend need not have the step."""
    probe = getattr(backend, "dead_parts", None)
    return list(probe()) if callable(probe) else []
