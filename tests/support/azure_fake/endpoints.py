"""Managed online endpoints and deployments on ARM, and the endpoint's scoring URI.

Shapes: as recorded in Azure/azure-sdk-assets python/sdk/ml/azure-ai-ml/tests/recordings/
online_services/e2etests/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.json
(operations ``Updating`` until ``Succeeded``; DELETE 202 with ``Azure-AsyncOperation`` and
``Location``, body null; a traffic-update PUT answers ``Creating``; ``{primaryKey,
secondaryKey}`` from listKeys), where the rest-api-specs stable/2024-04-01 examples said
``Location`` only for DELETE: the fake follows the recording. Not recorded, authored from
rest-api-specs: ``OnlineDeployment`` getLogs, endpoint creation's 201 body.

Scoring statuses from the Azure ML docs, "Troubleshoot online endpoints", HTTP status codes
(learn.microsoft.com/azure/machine-learning/how-to-troubleshoot-online-endpoints): 401 without
the key, 408 past ``request_timeout_ms``, 424 when the scoring container answered non-200 (its
status and reason in ``ms-azureml-model-error-statuscode`` / ``-reason``), 429 over the rate
limit (``Retry-After``), 5xx rarely.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.lro import Operation, Operations
from tests.support.azure_fake.wire import (
    NAME,
    Call,
    Reply,
    Route,
    Scope,
    error_reply,
    json_reply,
    route,
)

UPDATING = "Updating"  # endpoint and deployment operations in progress, as recorded

ENDPOINT_KEY = "fake-primary-key"


@dataclass
class Score:
    """One answer of the scoring URI."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"output": "The capital of France is Paris."})
    headers: dict[str, str] = field(default_factory=dict)

    def reply(self) -> Reply:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return self.status, {"Content-Type": "application/json", **self.headers}, text


def timed_out() -> Score:
    """408: the model did not answer within request_timeout_ms."""
    return Score(408, {"message": "Request timed out after 90000 ms"})


def model_error(
    status: str = "500", reason: str = "Internal Server Error", body: Any = None
) -> Score:
    """424: the scoring container's own failure, passed through with its status and reason;
    its body is the container's (here an ``error`` string, which breaks the SDK's parser)."""
    return Score(
        424,
        body if body is not None else {"error": "CUDA error: device-side assert"},
        {"ms-azureml-model-error-statuscode": status, "ms-azureml-model-error-reason": reason},
    )


def throttled(retry_after_s: str = "1") -> Score:
    """429 with Retry-After."""
    return Score(429, {"message": "Too many requests"}, {"Retry-After": retry_after_s})


@dataclass
class Endpoints:
    scope: Scope
    ops: Operations
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    endpoint_state: str = "Succeeded"
    endpoint_error: str = "Endpoint provisioning failed: internal error"
    deployment_state: str = "Succeeded"
    deployment_error: str = "OperationFailed: Operation failed or canceled"
    deployment_logs: str = "Liveness probe failed: HTTP probe failed with statuscode: 502"
    delete_fails: bool = False
    scores: list[Score] = field(default_factory=list)  # answered in turn, then ``score``
    score: Score = field(default_factory=Score)

    def routes(self) -> list[Route]:
        ws = f"{self.scope.ws}/onlineEndpoints"
        scoring = (
            r"https://([^./]+)\."
            + re.escape(self.scope.location)
            + r"\.inference\.ml\.azure\.com/score"
        )
        return [
            route("GET", "endpoint.list", ws, self._list),
            route("GET", "endpoint", f"{ws}/{NAME}", self._get),
            route("PUT", "endpoint", f"{ws}/{NAME}", self._put),
            route("PATCH", "endpoint", f"{ws}/{NAME}", self._put),
            route("DELETE", "endpoint", f"{ws}/{NAME}", self._delete),
            route("POST", "endpoint.keys", f"{ws}/{NAME}/listKeys", self._keys),
            route("GET", "deployment.list", f"{ws}/{NAME}/deployments", self._deployment_list),
            route("GET", "deployment", f"{ws}/{NAME}/deployments/{NAME}", self._deployment_get),
            route("PUT", "deployment", f"{ws}/{NAME}/deployments/{NAME}", self._deployment_put),
            route("POST", "deployment.logs", f"{ws}/{NAME}/deployments/{NAME}/getLogs", self._logs),
            route("POST", "score", scoring, self._score),
        ]

    def _body(self, name: str, body: Mapping[str, Any], state: str) -> dict[str, Any]:
        props = {k: v for k, v in body.get("properties", {}).items() if v is not None}
        uri = self.scope.scoring_uri(name)
        props.update(
            {
                "provisioningState": state,
                "scoringUri": uri,
                "swaggerUri": uri.replace("/score", "/swagger.json"),
            }
        )
        props.setdefault("traffic", {})
        return {
            "id": f"{self.scope.ws_path}/onlineEndpoints/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": body.get("location", self.scope.location),
            "kind": "Managed",
            "tags": body.get("tags") or {},
            "identity": {"type": "SystemAssigned"},
            "properties": props,
        }

    def _list(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, {"value": list(self.endpoints.values())})

    def _get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.endpoints.get(m.group(1))
        if body is None:
            return error_reply(404, "ResourceNotFound", f"endpoint {m.group(1)} not found")
        return json_reply(200, body)

    def _put(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        existing = self.endpoints.get(name)
        merged = dict(call.body)
        if existing is not None and call.method == "PATCH":
            merged = {
                **existing,
                **call.body,
                "properties": {**existing["properties"], **call.body.get("properties", {})},
            }
        updating = existing is not None
        # a traffic update of an existing endpoint answers Creating too, as recorded
        self.endpoints[name] = self._body(name, merged, "Creating")

        def outcome() -> tuple[str, str]:
            return ("Succeeded", "") if updating else (self.endpoint_state, self.endpoint_error)

        def done(status: str) -> None:
            if name in self.endpoints:
                self.endpoints[name]["properties"]["provisioningState"] = status

        kind = "endpoint.update" if updating else "endpoint"  # a traffic change is quick
        headers = self.ops.accept(Operation(kind, outcome, done, running=UPDATING))
        return json_reply(201, self.endpoints[name], headers)

    def _delete(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        if self.delete_fails:
            return error_reply(409, "Conflict", f"endpoint {name} cannot be deleted now")
        if name not in self.endpoints:
            return 204, {}, ""
        self.endpoints[name]["properties"]["provisioningState"] = "Deleting"

        def done(status: str) -> None:
            self.endpoints.pop(name, None)
            for key in [k for k in self.deployments if k[0] == name]:
                self.deployments.pop(key)

        operation = Operation("delete", lambda: ("Succeeded", ""), done, running=UPDATING)
        headers = self.ops.accept(operation, location=True)  # both headers, as recorded
        return 202, {**headers, "Content-Type": "application/json"}, "null"

    def _keys(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) not in self.endpoints:
            return error_reply(404, "ResourceNotFound", f"endpoint {m.group(1)} not found")
        return json_reply(200, {"primaryKey": ENDPOINT_KEY, "secondaryKey": "fake-secondary"})

    def _deployment_list(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(
            200, {"value": [body for (ep, _), body in self.deployments.items() if ep == m.group(1)]}
        )

    def _deployment_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.deployments.get((m.group(1), m.group(2)))
        if body is None:
            return error_reply(404, "ResourceNotFound", f"deployment {m.group(2)} not found")
        return json_reply(200, body)

    def _deployment_put(self, call: Call, m: re.Match[str]) -> Reply:
        key = (m.group(1), m.group(2))
        body = copy.deepcopy(call.body)
        body.update(
            {
                "id": f"{self.scope.ws_path}/onlineEndpoints/{key[0]}/deployments/{key[1]}",
                "name": key[1],
                "kind": "Managed",
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            }
        )
        body["properties"]["provisioningState"] = "Creating"
        body["properties"].setdefault("scaleSettings", {"scaleType": "Default"})
        self.deployments[key] = body

        def done(status: str) -> None:
            body["properties"]["provisioningState"] = status

        operation = Operation(
            "deployment",
            lambda: (self.deployment_state, self.deployment_error),
            done,
            running=UPDATING,
        )
        return json_reply(201, body, self.ops.accept(operation))

    def _logs(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, {"content": self.deployment_logs})

    def _score(self, call: Call, m: re.Match[str]) -> Reply:
        if call.headers.get("Authorization") != f"Bearer {ENDPOINT_KEY}":
            return 401, {"Content-Type": "text/plain"}, "key_auth_access_denied"
        return (self.scores.pop(0) if self.scores else self.score).reply()
