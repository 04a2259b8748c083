"""A stateful fake of the Azure ML REST API, served with ``responses``.

azure-ai-ml sends every call through azure-core's ``requests`` transport (and the harness reads
metrics through MLflow's RestStore, also ``requests``), so this fake answers at the HTTP level:
the real SDK builds the real requests, parses the real response shapes, runs its own LRO
pollers and retry policy. Tests assert on ``fake.requests`` (what was sent) and script outcomes
through plain attributes.

Usage::

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeAzureML(rsps, config)
        backend = make_backend(config, fake)
        ...
        fake.job_statuses = ["Running", "Failed"]

Scripting attributes (change them at any time):

- ``job_statuses``: statuses answered by successive GETs of a job (the last one repeats);
  ``job_error``: the error a Failed job reports;
- ``compute_create_fails``: tiers ("Dedicated", "LowPriority") whose cluster creation fails,
  with ``compute_create_error`` as the service's message; ``compute_state``: the provisioning
  state a created cluster ends in ("Succeeded" or "Failed");
- ``endpoint_state`` / ``deployment_state``: final state of the creation LRO ("Succeeded" or
  "Failed") with ``endpoint_error`` / ``deployment_error``; ``hold``: LRO kinds ("compute",
  "endpoint", "deployment", "delete") that stay in progress until ``release(kind)``;
- ``deployment_logs``: what ``getLogs`` returns; ``score_status`` / ``score_body``: the scoring
  URI's answer (the key is enforced: 401 without ``Authorization: Bearer <key>``);
- ``training_metrics``: metric histories of the fine-tune step's MLflow run;
- ``delete_fails``: kinds ("endpoint", "compute", "model") whose DELETE/archive answers 409;
- ``inject(route, status, ...)``: answer the next N calls of one route with a given status and
  headers, e.g. 429 with Retry-After (``fake.route_names`` lists the routes);
- ``add_compute(name, size)`` / ``add_job(name)``: resources that exist before the run;
  ``state``: everything the service holds (computes, jobs, models, endpoints, blobs...).

``fake.requests`` logs every call (method, URL, parsed JSON body, headers, route name);
``fake.unmatched`` lists calls no route served (a test that leaves one there has found a
request this fake does not know: ``check()`` fails on it).

Everything is served over HTTP, blob uploads included (default datastore, listSecrets, HEAD
and PUT of the blob, its metadata): nothing is faked at the SDK boundary. ``settle()`` (run by
``fake_azure`` on exit) releases held operations and joins the SDK's poller threads, so no
poller outlives the mock and reaches for the real network.

The lead's pytester conftest for ``--backend azure``: start a ``responses.RequestsMock`` in
``pytest_configure`` (stop it in ``pytest_unconfigure``), build ``FakeAzureML(rsps, config)``
and return ``make_backend(config, fake)`` from ``pytest_harness_create_backend``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

SUBSCRIPTION = "00000000-0000-4000-8000-000000000000"
RESOURCE_GROUP = "rg-harness"
WORKSPACE = "ws-harness"
LOCATION = "eastus"
REGISTRY_SUBSCRIPTION = "11111111-0000-4000-8000-000000000000"
ARM = "https://management.azure.com"
REGISTRY_HOST = f"https://{LOCATION}.experiments.azureml.net"
MLFLOW_HOST = f"https://{LOCATION}.api.azureml.ms"
STORAGE_ACCOUNT = "stharness"
CONTAINER = "azureml-blobstore-0001"
ENDPOINT_KEY = "fake-primary-key"
DATA = Path(__file__).parent / "data"

Reply = tuple[int, dict[str, str], str]
Handler = Callable[["Call", re.Match[str]], Reply]


@dataclass
class Call:
    """One request the SDK sent, as the fake saw it."""

    method: str
    url: str
    route: str
    headers: dict[str, str]
    body: Any  # parsed JSON, raw bytes, or None
    raw: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


@dataclass
class Injection:
    status: int
    body: str
    headers: dict[str, str]
    times: int
    method: str | None = None  # None: any method of the route


@dataclass
class Lro:
    """One long-running operation: answered InProgress until held no more, then ``outcome``."""

    kind: str
    outcome: Callable[[], tuple[str, str]]  # -> (status, error message)
    on_done: Callable[[str], None] = lambda status: None
    finished: str | None = None


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


def _error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"error": {"code": code, "message": message}})


def _raw_body(body: Any) -> bytes:
    data = body.read() if hasattr(body, "read") else body
    return data.encode() if isinstance(data, str) else bytes(data or b"")


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw


@dataclass
class RegistryModel:
    name: str
    version: str
    tags: dict[str, str]


def default_registry_models() -> list[RegistryModel]:
    """The system registry's Phi-3-mini with its real tags (tests/unit/data)."""
    tags = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())["tags"]
    return [RegistryModel("Phi-3-mini-4k-instruct", "14", dict(tags)),
            RegistryModel("Phi-3-mini-4k-instruct", "15", dict(tags))]


def default_component() -> dict[str, Any]:
    """chat_completion_pipeline's declared interface (tests/unit/data)."""
    return json.loads((DATA / "chat_completion_pipeline.inputs.json").read_text())  # type: ignore[no-any-return]


def default_metrics() -> dict[str, list[float]]:
    return {
        "loss": [2.4, 2.1, 1.9, 1.7],
        "learning_rate": [5e-6, 4e-6, 2e-6, 1e-6],
        "grad_norm": [1.2, 1.0, 0.9, 0.8],
        "epoch": [0.25, 0.5, 0.75, 1.0],
        "eval_loss": [1.9, 1.6],
        "train_loss": [1.95],
    }


@dataclass
class FakeState:
    """Everything the fake's service knows; the tests read and write it directly."""

    registry_models: list[RegistryModel] = field(default_factory=default_registry_models)
    component: dict[str, Any] = field(default_factory=default_component)
    computes: dict[str, dict[str, Any]] = field(default_factory=dict)
    vm_sizes: list[tuple[str, int]] = field(default_factory=lambda: [
        ("Standard_NC24ads_A100_v4", 1), ("Standard_NC48ads_A100_v4", 2),
        ("Standard_NC96ads_A100_v4", 4), ("Standard_ND96asr_v4", 8),
        ("Standard_NC6s_v3", 1), ("Standard_DS3_v2", 0)])
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_polls: dict[str, int] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    operations: dict[str, Lro] = field(default_factory=dict)


class FakeAzureML:
    """Serves the Azure ML REST calls the harness makes, with scripted outcomes."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        config: Any = None,
        *,
        location: str = LOCATION,
    ) -> None:
        self.subscription = getattr(config, "azure_subscription_id", None) or SUBSCRIPTION
        self.resource_group = getattr(config, "azure_resource_group", None) or RESOURCE_GROUP
        self.workspace = getattr(config, "azure_workspace", None) or WORKSPACE
        self.registry = getattr(config, "azure_registry", None) or "azureml"
        self.experiment = getattr(config, "experiment_name", None) or "experiment"
        self.location = location
        self.state = FakeState()
        self.requests: list[Call] = []
        self.unmatched: list[Call] = []
        self._lock = threading.RLock()
        self._injections: dict[str, list[Injection]] = {}
        self._held: dict[str, threading.Event] = {}
        self._ids = itertools.count(1)
        self._script_defaults()
        self._routes = self._build_routes()
        for method in ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"):
            rsps.add_callback(method, re.compile(r"https?://.*"), callback=self._dispatch)

    def _script_defaults(self) -> None:
        self.job_statuses: list[str] = ["Queued", "Running", "Completed"]
        self.job_error = "Execution failed: CUDA out of memory in step finetune"
        self.compute_create_fails: set[str] = set()
        self.compute_create_error = (
            "Operation could not be completed as it results in exceeding approved "
            "standardNCADSA100v4Family Cores quota. Additional details - Deployment Model: "
            "Resource Manager, Location: eastus, Current Limit: 0, Current Usage: 0"
        )
        self.compute_state = "Succeeded"
        self.endpoint_state = "Succeeded"
        self.endpoint_error = "Endpoint provisioning failed: internal error"
        self.deployment_state = "Succeeded"
        self.deployment_error = "OperationFailed: Operation failed or canceled"
        self.deployment_logs = "Liveness probe failed: HTTP probe failed with statuscode: 502"
        self.hold: set[str] = set()
        self.score_status = 200
        self.score_body: Any = {"output": "The capital of France is Paris."}
        self.training_metrics = default_metrics()
        self.delete_fails: set[str] = set()
        self.lro_retry_after_ms = "1"  # pollers wait 1 ms between polls

    # -- scripting API ---------------------------------------------------------------------

    def inject(self, route: str, status: int, body: Any = None,
               headers: Mapping[str, str] | None = None, times: int = 1,
               method: str | None = None) -> None:
        """Answer the next ``times`` calls of ``route`` with ``status`` (e.g. 429 + Retry-After)."""
        text = json.dumps(body if body is not None else {
            "error": {"code": f"Injected{status}", "message": f"injected HTTP {status}"}})
        self._injections.setdefault(route, []).append(
            Injection(status, text, dict(headers or {}), times, method))

    @property
    def route_names(self) -> list[str]:
        return sorted({route for _, route, _, _ in self._routes})

    def release(self, kind: str) -> None:
        """Let held LROs of ``kind`` finish (they then answer their scripted outcome)."""
        self.hold.discard(kind)
        self._held.setdefault(kind, threading.Event()).set()

    def settle(self, timeout_s: float = 5.0) -> None:
        """Release every held LRO and wait for the SDK's poller threads to finish."""
        for kind in [*self.hold, "compute", "endpoint", "deployment", "delete", "cancel"]:
            self.release(kind)
        for thread in threading.enumerate():
            if thread.name.startswith("LROPoller(") and thread is not threading.current_thread():
                thread.join(timeout_s)

    def add_job(self, name: str, status: str | None = None) -> str:
        """A submitted pipeline job (as the PUT stores it), without building a pipeline."""
        self.state.jobs[name] = {
            "id": f"{self.ws_id}/jobs/{name}", "name": name,
            "properties": {"jobType": "Pipeline", "status": status or self.job_statuses[0],
                           "experimentName": self.experiment, "displayName": name,
                           "jobs": {}, "inputs": {}, "outputs": {}, "settings": {},
                           "services": {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}"}}}}
        self.state.job_polls[name] = 0
        return f"https://ml.azure.com/runs/{name}"

    def calls(self, route: str, method: str | None = None) -> list[Call]:
        """The logged calls of one route (and method)."""
        return [c for c in self.requests if c.route == route and method in (None, c.method)]

    def check(self) -> None:
        """Fail when the SDK sent a request this fake has no route for."""
        assert not self.unmatched, "unserved requests: " + ", ".join(
            f"{c.method} {c.url}" for c in self.unmatched)

    def add_compute(self, name: str, size: str, *, state: str = "Succeeded",
                    tags: Mapping[str, str] | None = None) -> None:
        """A cluster that already exists (not created by the harness)."""
        self.state.computes[name] = self._compute_body(name, {
            "location": self.location, "tags": dict(tags or {}), "properties": {
                "computeType": "AmlCompute", "properties": {
                    "vmSize": size, "vmPriority": "Dedicated",
                    "scaleSettings": {"maxNodeCount": 2, "minNodeCount": 0}}}}, state)

    # -- URLs ------------------------------------------------------------------------------

    @property
    def ws_path(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}")

    @property
    def ws_id(self) -> str:
        return self.ws_path

    @property
    def registry_path(self) -> str:
        return (f"/mferp/managementfrontend/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/"
                f"registry-rg/providers/Microsoft.MachineLearningServices/registries/{self.registry}")

    @property
    def mlflow_path(self) -> str:
        return f"/mlflow/v1.0{self.ws_path}/api/2.0/mlflow"

    def scoring_uri(self, endpoint: str) -> str:
        return f"https://{endpoint}.{self.location}.inference.ml.azure.com/score"

    # -- dispatch --------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, str, re.Pattern[str], Handler]]:
        ws = re.escape(ARM + self.ws_path)
        reg = re.escape(REGISTRY_HOST + self.registry_path)
        mlf = re.escape(MLFLOW_HOST + self.mlflow_path)
        hist = re.escape(f"{MLFLOW_HOST}/history/v1.0{self.ws_path}")
        blob = re.escape(f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/{CONTAINER}")
        name = r"([^/?]+)"
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "registry.discovery", re.escape(
                f"https://{self.location}.api.azureml.ms/registrymanagement/v1.0/registries/"
                f"{self.registry}/discovery"), self._registry_discovery),
            ("GET", "registry.model.versions", f"{reg}/models/{name}/versions",
             self._registry_model_versions),
            ("GET", "registry.model", f"{reg}/models/{name}/versions/{name}", self._registry_model),
            ("GET", "registry.component.versions", f"{reg}/components/{name}/versions",
             self._registry_component_versions),
            ("GET", "registry.component", f"{reg}/components/{name}/versions/{name}",
             self._registry_component),
            ("GET", "workspace", ws, self._workspace),
            ("GET", "compute.list", f"{ws}/computes", self._compute_list),
            ("GET", "compute", f"{ws}/computes/{name}", self._compute_get),
            ("PUT", "compute", f"{ws}/computes/{name}", self._compute_put),
            ("DELETE", "compute", f"{ws}/computes/{name}", self._compute_delete),
            ("GET", "vmsizes", re.escape(f"{ARM}/subscriptions/{self.subscription}/providers/"
                                         "Microsoft.MachineLearningServices/locations/")
             + f"{name}/vmSizes", self._vm_sizes),
            ("GET", "operation", re.escape(f"{ARM}/fake-operations/") + name, self._operation),
            ("GET", "datastore.list", f"{ws}/datastores", self._datastore_list),
            ("GET", "datastore", f"{ws}/datastores/{name}", self._datastore_get),
            ("POST", "datastore.secrets", f"{ws}/datastores/{name}/listSecrets",
             self._datastore_secrets),
            ("HEAD", "blob", f"{blob}/([^?]+)", self._blob_head),
            ("GET", "blob", f"{blob}/([^?]+)", self._blob_head),
            ("PUT", "blob", f"{blob}/([^?]+)", self._blob_put),
            ("GET", "blob.list", f"{blob}", self._blob_list),
            ("PUT", "job", f"{ws}/jobs/{name}", self._job_put),
            ("GET", "job", f"{ws}/jobs/{name}", self._job_get),
            ("POST", "job.cancel", f"{ws}/jobs/{name}/cancel", self._job_cancel),
            ("GET", "discovery", re.escape(f"{MLFLOW_HOST}/discovery"), self._discovery),
            ("GET", "history.children", f"{hist}/runs/{name}/children", self._run_children),
            ("GET", "history.details", f"{hist}/runs/{name}/details", self._run_details),
            ("GET", "mlflow.experiment", f"{mlf}/experiments/get-by-name",
             self._mlflow_experiment),
            ("POST", "mlflow.search", f"{mlf}/runs/search", self._mlflow_search),
            ("GET", "mlflow.history", f"{mlf}/metrics/get-history", self._mlflow_history),
            ("GET", "model.list", f"{ws}/models", self._model_list),
            ("GET", "model.versions", f"{ws}/models/{name}/versions", self._model_versions),
            ("GET", "model", f"{ws}/models/{name}/versions/{name}", self._model_get),
            ("PUT", "model", f"{ws}/models/{name}/versions/{name}", self._model_put),
            ("DELETE", "model", f"{ws}/models/{name}/versions/{name}", self._model_delete),
            ("GET", "endpoint.list", f"{ws}/onlineEndpoints", self._endpoint_list),
            ("GET", "endpoint", f"{ws}/onlineEndpoints/{name}", self._endpoint_get),
            ("PUT", "endpoint", f"{ws}/onlineEndpoints/{name}", self._endpoint_put),
            ("PATCH", "endpoint", f"{ws}/onlineEndpoints/{name}", self._endpoint_put),
            ("DELETE", "endpoint", f"{ws}/onlineEndpoints/{name}", self._endpoint_delete),
            ("POST", "endpoint.keys", f"{ws}/onlineEndpoints/{name}/listKeys",
             self._endpoint_keys),
            ("GET", "deployment.list", f"{ws}/onlineEndpoints/{name}/deployments",
             self._deployment_list),
            ("GET", "deployment", f"{ws}/onlineEndpoints/{name}/deployments/{name}",
             self._deployment_get),
            ("PUT", "deployment", f"{ws}/onlineEndpoints/{name}/deployments/{name}",
             self._deployment_put),
            ("POST", "deployment.logs", f"{ws}/onlineEndpoints/{name}/deployments/{name}/getLogs",
             self._deployment_logs),
            ("POST", "score", r"https://([^./]+)\." + re.escape(self.location)
             + r"\.inference\.ml\.azure\.com/score", self._score),
        ]
        return [(m, r, re.compile(p + r"/?(?:\?.*)?$"), h) for m, r, p, h in table]

    def _dispatch(self, request: Any) -> Reply:
        with self._lock:
            raw = _raw_body(request.body)
            call = Call(request.method, request.url, "", dict(request.headers),
                        _parse_body(raw), raw)
            for method, route, pattern, handler in self._routes:
                match = pattern.match(request.url)
                if method == request.method and match:
                    call.route = route
                    self.requests.append(call)
                    injected = self._injected(route, call.method)
                    return injected or handler(call, match)
            call.route = "unmatched"
            self.requests.append(call)
            self.unmatched.append(call)
        return _error(501, "FakeHasNoRoute", f"fake has no route for {call.method} {call.url}")

    def _injected(self, route: str, method: str) -> Reply | None:
        queue = self._injections.get(route, [])
        head = next((i for i in queue if i.method in (None, method)), None)
        if head is None:
            return None
        head.times -= 1
        if head.times <= 0:
            queue.remove(head)
        return head.status, {"Content-Type": "application/json", **head.headers}, head.body

    # -- long-running operations -------------------------------------------------------------

    def _start_lro(self, lro: Lro) -> dict[str, str]:
        """Headers of an accepted LRO; its status URL is served by ``_operation``."""
        op_id = f"op{next(self._ids)}"
        self.state.operations[op_id] = lro
        return {"Azure-AsyncOperation": f"{ARM}/fake-operations/{op_id}",
                "Location": f"{ARM}/fake-operations/{op_id}",
                "retry-after-ms": self.lro_retry_after_ms}

    def _operation(self, call: Call, m: re.Match[str]) -> Reply:
        lro = self.state.operations[m.group(1)]
        if lro.finished is None and lro.kind in self.hold:
            event = self._held.setdefault(lro.kind, threading.Event())
            event.clear()
            self._lock.release()  # let the test and other threads go on while this one waits
            try:
                event.wait(0.2)
            finally:
                self._lock.acquire()
        if lro.finished is None and lro.kind not in self.hold:
            status = lro.outcome()[0]
            lro.finished = status
            lro.on_done(status)
        if lro.finished is None:
            return _json(200, {"status": "InProgress"},
                         {"retry-after-ms": self.lro_retry_after_ms})
        body: dict[str, Any] = {"status": lro.finished}
        if lro.finished != "Succeeded":
            body["error"] = {"code": "OperationFailed", "message": lro.outcome()[1]}
        return _json(200, body)

    # -- registry ----------------------------------------------------------------------------

    def _registry_discovery(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {
            "registryName": self.registry, "subscriptionId": REGISTRY_SUBSCRIPTION,
            "resourceGroup": "registry-rg", "primaryRegion": self.location,
            "primaryRegionResourceProviderUri": f"{REGISTRY_HOST}/"})

    def _registry_model_body(self, model: RegistryModel) -> dict[str, Any]:
        asset = f"azureml://registries/{self.registry}/models/{model.name}/versions/{model.version}"
        return {"id": asset, "name": model.version, "properties": {
            "description": f"{model.name} foundation model", "tags": model.tags,
            "properties": {}, "modelType": "mlflow_model", "modelUri": asset,
            "isArchived": False, "flavors": {}}}

    def _registry_model_versions(self, call: Call, m: re.Match[str]) -> Reply:
        """The label "latest" is a listing by creation time, newest first, top 1."""
        found = [x for x in self.state.registry_models if x.name == m.group(1)][::-1]
        top = int(call.query.get("$top", [len(found)])[0])
        return _json(200, {"value": [self._registry_model_body(x) for x in found[:top]]})

    def _registry_model(self, call: Call, m: re.Match[str]) -> Reply:
        for model in self.state.registry_models:
            if (model.name, model.version) == (m.group(1), m.group(2)):
                return _json(200, self._registry_model_body(model))
        return _error(404, "UserError", f"model {m.group(1)}:{m.group(2)} not found in registry")

    def _component_body(self) -> dict[str, Any]:
        spec = self.state.component
        asset = (f"azureml://registries/{self.registry}/components/{spec['name']}/versions/"
                 f"{spec['version']}")
        return {"id": asset, "name": spec["version"], "properties": {
            "isAnonymous": False, "tags": {}, "properties": {},
            "componentSpec": {"name": spec["name"], "version": spec["version"],
                              "type": "pipeline", "display_name": spec["name"],
                              "inputs": json.loads(json.dumps(spec["inputs"])),
                              "outputs": json.loads(json.dumps(spec["outputs"])),
                              "jobs": {}}}}

    def _registry_component_versions(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) != self.state.component["name"]:
            return _json(200, {"value": []})
        return _json(200, {"value": [self._component_body()]})

    def _registry_component(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) != self.state.component["name"]:
            return _error(404, "UserError", f"component {m.group(1)} not found")
        return _json(200, self._component_body())

    # -- workspace and computes --------------------------------------------------------------

    def _workspace(self, call: Call, m: re.Match[str]) -> Reply:
        tracking = (f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.ws_path}")
        return _json(200, {
            "id": self.ws_id, "name": self.workspace, "location": self.location,
            "kind": "Default", "properties": {
                "mlFlowTrackingUri": tracking, "workspaceId": "fake-workspace-id",
                "discoveryUrl": f"https://{self.location}.api.azureml.ms/discovery",
                "friendlyName": self.workspace}})

    def _compute_body(self, name: str, body: Mapping[str, Any], state: str) -> dict[str, Any]:
        props = dict(body.get("properties", {}))
        props["provisioningState"] = state
        if state == "Failed":
            props["provisioningErrors"] = [{"error": {
                "code": "ResourceOperationFailure", "message": "allocation failed"}}]
        return {"id": f"{self.ws_id}/computes/{name}", "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/computes",
                "location": body.get("location", self.location),
                "tags": body.get("tags") or {}, "properties": props}

    def _compute_list(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"value": list(self.state.computes.values())})

    def _compute_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.state.computes.get(m.group(1))
        if body is None:
            return _error(404, "ResourceNotFound", f"compute {m.group(1)} not found")
        return _json(200, body)

    def _compute_put(self, call: Call, m: re.Match[str]) -> Reply:
        name, body = m.group(1), call.body
        tier = body["properties"]["properties"].get("vmPriority", "Dedicated")
        if tier in self.compute_create_fails:
            return _error(400, "QuotaExceeded", self.compute_create_error)
        self.state.computes[name] = self._compute_body(name, body, "Creating")

        def done(status: str) -> None:
            self.state.computes[name] = self._compute_body(name, body, self.compute_state)

        lro = Lro("compute", lambda: ("Succeeded", ""), done)
        return _json(201, self.state.computes[name], self._start_lro(lro))

    def _compute_delete(self, call: Call, m: re.Match[str]) -> Reply:
        if "compute" in self.delete_fails:
            return _error(409, "Conflict", f"compute {m.group(1)} is busy: a job is running")
        if self.state.computes.pop(m.group(1), None) is None:
            return _error(404, "ResourceNotFound", f"compute {m.group(1)} not found")
        return 202, self._start_lro(Lro("delete", lambda: ("Succeeded", ""))), ""

    def _vm_sizes(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"value": [
            {"name": n, "family": "fake", "vCPUs": 24, "gpus": g, "memoryGB": 220.0,
             "supportedComputeTypes": ["AmlCompute"]} for n, g in self.state.vm_sizes]})

    # -- datastores and blobs -----------------------------------------------------------------

    def _datastore_body(self) -> dict[str, Any]:
        return {"id": f"{self.ws_id}/datastores/workspaceblobstore", "name": "workspaceblobstore",
                "properties": {"datastoreType": "AzureBlob", "isDefault": True,
                               "accountName": STORAGE_ACCOUNT, "containerName": CONTAINER,
                               "endpoint": "core.windows.net", "protocol": "https",
                               "credentials": {"credentialsType": "AccountKey"}}}

    def _datastore_list(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"value": [self._datastore_body()]})

    def _datastore_get(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, self._datastore_body())

    def _datastore_secrets(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"secretsType": "Sas", "sasToken": "sv=2023-01-03&sig=fake"})

    def _blob_head(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) not in self.state.blobs:
            return 404, {"x-ms-error-code": "BlobNotFound"}, ""
        return 200, {"Content-Length": str(len(self.state.blobs[m.group(1)])),
                     "x-ms-blob-type": "BlockBlob"}, ""

    def _blob_put(self, call: Call, m: re.Match[str]) -> Reply:
        headers = {"ETag": '"0x1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        if "comp=metadata" in call.url:
            return 200, headers, ""
        self.state.blobs[m.group(1)] = call.raw
        return 201, headers, ""

    def _blob_list(self, call: Call, m: re.Match[str]) -> Reply:
        return 200, {"Content-Type": "application/xml"}, (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs/>'
            "<NextMarker/></EnumerationResults>")

    # -- jobs ---------------------------------------------------------------------------------

    def _job_put(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        body = json.loads(json.dumps(call.body))
        props = body["properties"]
        props["status"] = "NotStarted"
        props["services"] = {"Studio": {"jobServiceType": "Studio", "endpoint": (
            f"https://ml.azure.com/runs/{name}?wsid={self.ws_path}")}}
        body.update({"id": f"{self.ws_id}/jobs/{name}", "name": name,
                     "type": "Microsoft.MachineLearningServices/workspaces/jobs"})
        self.state.jobs[name] = body
        self.state.job_polls[name] = 0
        return _json(201, body)

    def _job_status(self, name: str) -> str:
        if name in self.state.cancelled:
            return "Canceled"
        index = self.state.job_polls[name]
        self.state.job_polls[name] = index + 1
        return self.job_statuses[min(index, len(self.job_statuses) - 1)]

    def _job_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.state.jobs.get(m.group(1))
        if body is None:
            return _error(404, "UserError", f"job {m.group(1)} not found")
        status = self._job_status(m.group(1))
        body["properties"]["status"] = status
        if status == "Failed":
            body["properties"]["error"] = {"code": "UserError", "message": self.job_error}
        return _json(200, body)

    def _discovery(self, call: Call, m: re.Match[str]) -> Reply:
        services = ("api", "catalog", "experimentation", "gallery", "history", "hyperdrive",
                    "labeling", "modelmanagement", "pipelines")
        return _json(200, {**{s: MLFLOW_HOST for s in services}, "studio": "https://ml.azure.com"})

    def _step_status(self, job: str) -> str:
        status = self.state.jobs[job]["properties"]["status"]
        return status if status in {"Failed", "Canceled", "NotResponding", "Paused"} else (
            "Completed")

    def _run_children(self, call: Call, m: re.Match[str]) -> Reply:
        job = m.group(1)
        if job not in self.state.jobs:
            return _error(404, "UserError", f"run {job} not found")
        steps = [("preprocess", "Completed"), ("finetune", self._step_status(job))]
        return _json(200, {"value": [
            {"runId": f"{job}-{step}", "displayName": step, "status": status,
             "experimentId": "exp-1", "parentRunId": job, "rootRunId": job}
            for step, status in steps]})

    def _run_details(self, call: Call, m: re.Match[str]) -> Reply:
        run = m.group(1)
        job = run.rsplit("-", 1)[0] if run not in self.state.jobs else run
        if job not in self.state.jobs:
            return _error(404, "UserError", f"run {run} not found")
        status = self._step_status(job) if run.endswith("-finetune") else "Completed"
        body: dict[str, Any] = {"runId": run, "status": status}
        if status == "Failed":
            body["error"] = {"error": {"code": "UserError", "message": self.job_error}}
        return _json(200, body)

    def _job_cancel(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) not in self.state.jobs:
            return _error(404, "UserError", f"job {m.group(1)} not found")
        self.state.cancelled.add(m.group(1))
        return 202, self._start_lro(Lro("cancel", lambda: ("Succeeded", ""))), ""

    # -- MLflow ---------------------------------------------------------------------------------

    def _mlflow_experiment(self, call: Call, m: re.Match[str]) -> Reply:
        name = call.query.get("experiment_name", [""])[0]
        if name != self.experiment:
            return _json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                               "message": f"experiment {name} not found"})
        return _json(200, {"experiment": {"experiment_id": "exp-1", "name": name,
                                          "lifecycle_stage": "active"}})

    def _runs(self) -> list[dict[str, Any]]:
        runs = []
        for job in self.state.jobs:
            for step, metrics in (("preprocess", {}), ("finetune", self.training_metrics)):
                latest = [{"key": k, "value": v[-1], "timestamp": 0, "step": len(v) - 1}
                          for k, v in metrics.items() if v]
                runs.append({"info": {"run_id": f"{job}-{step}", "experiment_id": "exp-1",
                                      "run_name": step, "status": "FINISHED",
                                      "lifecycle_stage": "active"},
                             "data": {"metrics": latest, "params": [], "tags": [
                                 {"key": "mlflow.rootRunId", "value": job},
                                 {"key": "mlflow.parentRunId", "value": job}]}})
        return runs

    def _mlflow_search(self, call: Call, m: re.Match[str]) -> Reply:
        found = re.search(r"tags\.mlflow\.rootRunId\s*=\s*'([^']+)'", call.body.get("filter", ""))
        root = found.group(1) if found else None
        runs = [r for r in self._runs() if root is None or any(
            t["value"] == root for t in r["data"]["tags"] if t["key"] == "mlflow.rootRunId")]
        return _json(200, {"runs": runs})

    def _mlflow_history(self, call: Call, m: re.Match[str]) -> Reply:
        run_id = call.query["run_id"][0]
        key = call.query["metric_key"][0]
        values = self.training_metrics.get(key, []) if run_id.endswith("-finetune") else []
        return _json(200, {"metrics": [
            {"key": key, "value": v, "timestamp": 1000 + i, "step": i}
            for i, v in enumerate(values)]})

    # -- models ---------------------------------------------------------------------------------

    def _model_body(self, name: str, version: str, props: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": f"{self.ws_id}/models/{name}/versions/{version}", "name": version,
                "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
                "properties": {"flavors": {}, **props, "provisioningState": "Succeeded"}}

    def _model_put(self, call: Call, m: re.Match[str]) -> Reply:
        key = (m.group(1), m.group(2))
        if "model" in self.delete_fails and call.body["properties"].get("isArchived"):
            return _error(409, "Conflict", f"model {key[0]}:{key[1]} is in use")
        self.state.models[key] = self._model_body(*key, call.body["properties"])
        return _json(200, self.state.models[key])

    def _model_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.state.models.get((m.group(1), m.group(2)))
        if body is None:
            return _error(404, "UserError", f"model {m.group(1)}:{m.group(2)} not found")
        return _json(200, body)

    def _model_delete(self, call: Call, m: re.Match[str]) -> Reply:
        if "model" in self.delete_fails:
            return _error(409, "Conflict", f"model {m.group(1)}:{m.group(2)} is in use")
        self.state.models.pop((m.group(1), m.group(2)), None)
        return 200, {}, ""

    def _model_list(self, call: Call, m: re.Match[str]) -> Reply:
        names = sorted({name for name, _ in self.state.models})
        return _json(200, {"value": [
            {"id": f"{self.ws_id}/models/{n}", "name": n, "properties": {}} for n in names]})

    def _model_versions(self, call: Call, m: re.Match[str]) -> Reply:
        active_only = call.query.get("listViewType", ["ActiveOnly"])[0] == "ActiveOnly"
        return _json(200, {"value": [
            body for (name, _), body in self.state.models.items() if name == m.group(1)
            and not (active_only and body["properties"].get("isArchived"))]})

    # -- endpoints and deployments ---------------------------------------------------------------

    def _endpoint_body(self, name: str, body: Mapping[str, Any], state: str) -> dict[str, Any]:
        props = {k: v for k, v in body.get("properties", {}).items() if v is not None}
        props.update({"provisioningState": state, "scoringUri": self.scoring_uri(name),
                      "swaggerUri": self.scoring_uri(name).replace("/score", "/swagger.json")})
        props.setdefault("traffic", {})
        return {"id": f"{self.ws_id}/onlineEndpoints/{name}", "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "location": body.get("location", self.location), "kind": "Managed",
                "tags": body.get("tags") or {}, "identity": {"type": "SystemAssigned"},
                "properties": props}

    def _endpoint_list(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"value": list(self.state.endpoints.values())})

    def _endpoint_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.state.endpoints.get(m.group(1))
        if body is None:
            return _error(404, "ResourceNotFound", f"endpoint {m.group(1)} not found")
        return _json(200, body)

    def _endpoint_put(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        existing = self.state.endpoints.get(name)
        merged = dict(call.body)
        if existing is not None and call.method == "PATCH":
            merged = {**existing, **call.body, "properties": {
                **existing["properties"], **call.body.get("properties", {})}}
        updating = existing is not None
        self.state.endpoints[name] = self._endpoint_body(
            name, merged, "Updating" if updating else "Creating")

        def outcome() -> tuple[str, str]:
            return ("Succeeded", "") if updating else (self.endpoint_state, self.endpoint_error)

        def done(status: str) -> None:
            if name in self.state.endpoints:
                self.state.endpoints[name]["properties"]["provisioningState"] = status

        lro = Lro("endpoint", outcome, done)
        return _json(201, self.state.endpoints[name], self._start_lro(lro))

    def _endpoint_delete(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        if "endpoint" in self.delete_fails:
            return _error(409, "Conflict", f"endpoint {name} cannot be deleted now")
        if name not in self.state.endpoints:
            return 204, {}, ""
        self.state.endpoints[name]["properties"]["provisioningState"] = "Deleting"

        def done(status: str) -> None:
            self.state.endpoints.pop(name, None)
            for key in [k for k in self.state.deployments if k[0] == name]:
                self.state.deployments.pop(key)

        return 202, self._start_lro(Lro("delete", lambda: ("Succeeded", ""), done)), ""

    def _endpoint_keys(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) not in self.state.endpoints:
            return _error(404, "ResourceNotFound", f"endpoint {m.group(1)} not found")
        return _json(200, {"primaryKey": ENDPOINT_KEY, "secondaryKey": "fake-secondary-key"})

    def _deployment_list(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"value": [
            body for (ep, _), body in self.state.deployments.items() if ep == m.group(1)]})

    def _deployment_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.state.deployments.get((m.group(1), m.group(2)))
        if body is None:
            return _error(404, "ResourceNotFound", f"deployment {m.group(2)} not found")
        return _json(200, body)

    def _deployment_put(self, call: Call, m: re.Match[str]) -> Reply:
        key = (m.group(1), m.group(2))
        body = json.loads(json.dumps(call.body))
        body.update({"id": f"{self.ws_id}/onlineEndpoints/{key[0]}/deployments/{key[1]}",
                     "name": key[1], "kind": "Managed",
                     "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/"
                             "deployments"})
        body["properties"]["provisioningState"] = "Creating"
        body["properties"].setdefault("scaleSettings", {"scaleType": "Default"})
        self.state.deployments[key] = body

        def done(status: str) -> None:
            body["properties"]["provisioningState"] = status

        lro = Lro("deployment", lambda: (self.deployment_state, self.deployment_error), done)
        return _json(201, body, self._start_lro(lro))

    def _deployment_logs(self, call: Call, m: re.Match[str]) -> Reply:
        return _json(200, {"content": self.deployment_logs})

    def _score(self, call: Call, m: re.Match[str]) -> Reply:
        if call.headers.get("Authorization") != f"Bearer {ENDPOINT_KEY}":
            return 401, {"Content-Type": "text/plain"}, "key_auth_access_denied"
        body = self.score_body if isinstance(self.score_body, str) else json.dumps(
            self.score_body)
        return self.score_status, {"Content-Type": "application/json"}, body


# -- helpers for tests and conftests --------------------------------------------------------------


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
        token = jwt.encode({"aud": audience, "exp": expires, "oid": str(uuid.uuid4())},
                           "fake-signing-key-for-unit-tests-only", algorithm="HS256")
        return AccessToken(token, expires)


def azure_config(**overrides: Any) -> Any:
    """A HarnessConfig for the azure backend pointing at the fake's workspace."""
    from harness import config

    cli = {"backend": "azure", "azure_subscription_id": SUBSCRIPTION,
           "azure_resource_group": RESOURCE_GROUP, "azure_workspace": WORKSPACE,
           "run_id": "hfake0001", **overrides}
    return config.resolve(cli=cli, env={}, ini={})


def make_backend(config: Any, fake: FakeAzureML | None = None, *, retry_total: int = 0) -> Any:
    """An AzureBackend that talks to the fake: fake credential, no retries, no poll waits."""
    from harness.backends.azure import AzureBackend

    backend = AzureBackend(config, credential=FakeCredential(), retry_total=retry_total)
    backend.poll_interval_s = 0.0
    return backend


@contextmanager
def fake_azure(config: Any = None, *, retry_total: int = 0) -> Iterator[tuple[FakeAzureML, Any]]:
    """A started fake and a backend wired to it; everything stops on exit."""
    config = config or azure_config()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeAzureML(rsps, config)
        backend = make_backend(config, fake, retry_total=retry_total)
        try:
            yield fake, backend
        finally:
            fake.settle()
            backend.close(stop_owned=True)


def prepared_data(folder: Path) -> Any:
    """Two tiny JSON Lines splits, as harness.data.prepare writes them."""
    from harness.data import PreparedData

    row = {"prompt": "Hi", "prompt_id": "1", "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    files = {}
    for split in ("train_sft", "test_sft", "test_gen"):
        files[split] = str(folder / f"{split}.jsonl")
        Path(files[split]).write_text(json.dumps(row) + "\n", encoding="utf-8")
    return PreparedData(directory=str(folder), files=files, counts=dict.fromkeys(files, 1))
