"""A stateful fake of Azure ML's REST services, served over HTTP with ``responses``.

Where the Azure SDK team's recordings of the live service (Azure/azure-sdk-assets,
``python/sdk/ml/azure-ai-ml/tests/recordings/``) show an answer, the fake serves that shape and
names the recording; elsewhere it keeps the shape authored from specs and SDK source, with its
source. One module per service, each holding its state and its scripting attributes:

- ``registry``: discovery and model versions of several registries (``azureml``,
  ``azureml-meta``, ``azureml-openai-oss``) in the recorded shape (``name`` the model's name,
  ``type`` ``models``, no system metadata unless ``metadata_key`` asks for the variant that
  carries it), an unknown name's empty page, archived versions, an old tag-form model; the
  fine-tune pipeline component, in ``azureml`` only;
- ``workspace``: the workspace, compute clusters (the recorded 201 and DELETE; creation
  accepted, then Failed on quota; names taken elsewhere in the region), the region's VM sizes
  and core usage, model versions (404 for an unknown name);
- ``storage``: the default datastore and its blob container (training file uploads);
- ``jobs``: pipeline jobs (a status walk through NotResponding and Unknown), cancel, and the
  RunHistory tree with the failed step one level below the root's child;
- ``mlflow``: the tracking service, at ``/mlflow/v2.0`` only;
- ``endpoints``: online endpoints, deployments, keys, logs, and the scoring URI (401, 408,
  424 with the model-error headers, 429 with Retry-After);
- ``lro``: long-running operations as recorded (endpoints and deployments ``Updating``,
  compute ``InProgress`` then ``percentComplete``; endpoint DELETE with both headers, compute
  DELETE with ``Azure-AsyncOperation`` only), job cancel with ``Location`` only (authored);
  ``wire``: routing and logging (each call keeps the fake's answer: status, headers, body).

Every response shape names its public source. Tests assert on ``fake.requests`` (what the SDK
sent) and script outcomes through the services' attributes, e.g.
``fake.jobs.statuses = ["Running", "Failed"]`` or ``fake.endpoints.scores = [throttled()]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import responses

from tests.support.azure_fake.endpoints import ENDPOINT_KEY, Endpoints
from tests.support.azure_fake.jobs import Jobs
from tests.support.azure_fake.lro import Operations
from tests.support.azure_fake.mlflow import Mlflow
from tests.support.azure_fake.registry import Registry
from tests.support.azure_fake.storage import Storage
from tests.support.azure_fake.wire import Call, Router, Scope
from tests.support.azure_fake.workspace import Workspace

if TYPE_CHECKING:
    from harness.backends.azure import AzureBackend
    from harness.config import HarnessConfig
    from harness.data import PreparedData

__all__ = [
    "ENDPOINT_KEY",
    "AzureRig",
    "Call",
    "FakeAzureML",
    "azure_config",
    "fake_azure",
    "make_backend",
    "prepared_data",
]

SUBSCRIPTION = "00000000-0000-4000-8000-000000000000"
RESOURCE_GROUP = "rg-harness"
WORKSPACE = "ws-harness"
LOCATION = "eastus"
MODEL = "Phi-4"  # the fake registry's current (not archived) chat model


class FakeAzureML:
    """Azure ML's services for one workspace and its registry, behind one ``responses`` mock."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        config: HarnessConfig | None = None,
        *,
        location: str = LOCATION,
        metadata_key: str | None = None,
    ) -> None:
        self.scope = Scope(
            subscription=getattr(config, "azure_subscription_id", None) or SUBSCRIPTION,
            resource_group=getattr(config, "azure_resource_group", None) or RESOURCE_GROUP,
            workspace=getattr(config, "azure_workspace", None) or WORKSPACE,
            registry=getattr(config, "azure_model_registry", None) or "azureml",
            location=location,
            experiment=getattr(config, "experiment_name", None) or "experiment",
        )
        self.router = Router()
        self.ops = Operations(self.router)
        # None: the registry's version GET without system metadata, as recorded
        self.registry = Registry(self.scope, metadata_key=metadata_key)
        self.workspace = Workspace(self.scope, self.ops)
        self.storage = Storage(self.scope)
        self.jobs = Jobs(self.scope, self.ops)
        self.mlflow = Mlflow(self.scope, self.jobs)
        self.endpoints = Endpoints(self.scope, self.ops)
        for service in (
            self.ops,
            self.registry,
            self.workspace,
            self.storage,
            self.jobs,
            self.mlflow,
            self.endpoints,
        ):
            self.router.add(service.routes())
        self.router.attach(rsps)

    @property
    def requests(self) -> list[Call]:
        return self.router.requests

    def calls(self, route_name: str, method: str | None = None) -> list[Call]:
        """The logged calls of one route (and method)."""
        return self.router.calls(route_name, method)

    def check(self) -> None:
        self.router.check()

    def settle(self) -> None:
        self.ops.settle()


class FakeCredential:
    """A TokenCredential whose tokens are unsigned JWTs with the audience the SDK checks."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import jwt
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        expires = int(time.time()) + 3600
        token = jwt.encode(
            {"aud": audience, "exp": expires, "oid": str(uuid.uuid4())},
            "fake-signing-key-for-unit-tests-only",
            algorithm="HS256",
        )
        return AccessToken(token, expires)


def azure_config(**overrides: Any) -> HarnessConfig:
    """A HarnessConfig for the azure backend pointing at the fake's workspace."""
    from harness import config

    cli = {
        "backend": "azure",
        "azure_subscription_id": SUBSCRIPTION,
        "azure_resource_group": RESOURCE_GROUP,
        "azure_workspace": WORKSPACE,
        "model_name": MODEL,
        "run_id": "hfake0001",
        **overrides,
    }
    return config.resolve(cli={k: v for k, v in cli.items() if v is not None}, env={}, ini={})


def make_backend(
    config: HarnessConfig, *, retry_total: int = 0, poll_interval_s: float = 0.0
) -> AzureBackend:
    """An AzureBackend for the fake: fake credential, no retries, no waits between polls."""
    from harness.backends.azure import AzureBackend

    backend = AzureBackend(config, credential=FakeCredential(), retry_total=retry_total)
    backend.poll_interval_s = poll_interval_s
    return backend


@dataclass
class AzureRig:
    """A started fake and an AzureBackend wired to it: what the Azure unit tests work on."""

    fake: FakeAzureML
    backend: AzureBackend


@contextmanager
def fake_azure(
    config: HarnessConfig | None = None,
    *,
    retry_total: int = 0,
    metadata_key: str | None = "system_metadata",
) -> Iterator[AzureRig]:
    """A started fake and a backend wired to it; everything stops on exit. By default its
    registry sends system metadata (the variant for when the service does);
    ``metadata_key=None`` serves the recorded GET, which carries none."""
    config = config or azure_config()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeAzureML(rsps, config, metadata_key=metadata_key)
        rig = AzureRig(fake, make_backend(config, retry_total=retry_total))
        try:
            yield rig
        finally:
            rig.fake.settle()
            rig.backend.close(stop_owned=True)


def prepared_data(folder: Path) -> PreparedData:
    """Two tiny JSON Lines splits, as harness.data.prepare writes them."""
    from harness.data import PreparedData

    row = {
        "prompt": "Hi",
        "prompt_id": "1",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    }
    files = {}
    for split in ("train_sft", "test_sft", "test_gen"):
        files[split] = str(folder / f"{split}.jsonl")
        Path(files[split]).write_text(json.dumps(row) + "\n", encoding="utf-8")
    return PreparedData(directory=str(folder), files=files, counts=dict.fromkeys(files, 1))
