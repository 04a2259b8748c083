"""The workspace on ARM: the workspace itself, compute clusters, the region's VM sizes and
core usage, and the workspace's model versions (the fine-tuned models the harness registers).

Compute creation and deletion as recorded (Azure/azure-sdk-assets
python/sdk/ml/azure-ai-ml/tests/recordings/compute/e2etests/
test_compute.pyTestComputetest_aml_compute_create_and_delete.json): the PUT's 201 body carries
``vmSize`` upper-cased and ``tags: null``; DELETE answers 202 with ``Azure-AsyncOperation`` only
(the rest-api-specs example ``Compute/delete.json`` adds ``Location``: the fake follows the
recording); the operation answers ``InProgress``, then ``Succeeded`` with ``percentComplete``.
A workspace answers an unknown model name's version listing with 404 (azureml-facts,
"Corrections, 2026-12", item 3). Authored from rest-api-specs stable/2024-04-01 examples, with no
recording: ``Workspace/get.json``, ``Compute/get/AmlCompute.json``,
``VirtualMachineSize/list.json``, ``Usage/list.json``, ``Workspace/ModelVersion/get.json``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.lro import Operation, Operations
from tests.support.azure_fake.wire import (
    ARM,
    NAME,
    Call,
    Reply,
    Route,
    Scope,
    error_reply,
    json_reply,
    route,
)

# (name, family, vCPUs, GPUs): families as VirtualMachineSize/list.json spells them
SIZES = [
    ("Standard_NC24ads_A100_v4", "standardNCADSA100v4Family", 24, 1),
    ("Standard_NC48ads_A100_v4", "standardNCADSA100v4Family", 48, 2),
    ("Standard_NC96ads_A100_v4", "standardNCADSA100v4Family", 96, 4),
    ("Standard_ND96asr_v4", "standardNDASv4_A100Family", 96, 8),
    ("Standard_NC40ads_H100_v5", "standardNCadsH100v5Family", 40, 1),
    ("Standard_NC6s_v3", "standardNCSv3Family", 6, 1),  # retired, still listed: the table wins
    ("Standard_DS3_v2", "standardDSv2Family", 4, 0),
]
# Usage/list.json: a vmFamily entry per family, "Standard <X> Family Cluster Dedicated vCPUs"
USAGE = {
    "standardNCADSA100v4Family": (0, 96),
    "standardNDASv4_A100Family": (0, 96),
    "standardNCadsH100v5Family": (0, 40),
    "standardNCSv3Family": (0, 24),
    "standardDSv2Family": (2, 24),
}
# Async quota failure of a compute creation (Azure/mlops-v2#81, while waiting for creation:
# Code="BadRequest" Message="The specified subscription has a total vCPU quota of 0 and cannot
# accomodate for at least 1 requested managed compute node which maps to 2 vCPUs.")
QUOTA_FAILURE = (
    "BadRequest: The specified subscription has a total vCPU quota of 0 and cannot "
    "accomodate for at least 1 requested managed compute node which maps to 24 "
    "vCPUs."
)
# A name another workspace of the region holds (microsoft/MCW-ML-Ops#28; whether the PUT or its
# operation fails is not verified, the harness reads both)
NAME_TAKEN = (
    "Compute with this name already exists. Compute name needs to be unique across "
    "all existing computes within an Azure region."
)


def usage_entry(scope: Scope, family: str, current: int, limit: int) -> dict[str, Any]:
    label = family.removeprefix("standard").removesuffix("Family")
    name = f"Standard {label} Family Cluster Dedicated vCPUs"
    return {
        "id": f"/subscriptions/{scope.subscription}/usages/{name.replace(' ', '_')}",
        "type": "Microsoft.MachineLearningServices/vmFamily/usages",
        "currentValue": current,
        "limit": limit,
        "unit": "Count",
        "name": {"value": name, "localizedValue": name},
    }


@dataclass
class Workspace:
    scope: Scope
    ops: Operations
    computes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: list[tuple[str, str, int, int]] = field(default_factory=lambda: list(SIZES))
    usage: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(USAGE))
    quota_tiers: set[str] = field(default_factory=set)  # tiers whose creation fails on quota
    taken_in_region: set[str] = field(default_factory=set)  # names other workspaces hold
    created_state: str = "Succeeded"  # a created cluster's provisioning state
    delete_fails: bool = False
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    model_lineage: str = "jobName"  # "jobName" or "path": how the service reports the job
    archive_fails: bool = False

    def routes(self) -> list[Route]:
        ws = self.scope.ws
        sizes = (
            re.escape(
                f"{ARM}/subscriptions/{self.scope.subscription}/providers/"
                "Microsoft.MachineLearningServices/locations/"
            )
            + NAME
        )
        return [
            route("GET", "workspace", ws, self._workspace),
            route("GET", "compute.list", f"{ws}/computes", self._compute_list),
            route("GET", "compute", f"{ws}/computes/{NAME}", self._compute_get),
            route("PUT", "compute", f"{ws}/computes/{NAME}", self._compute_put),
            route("DELETE", "compute", f"{ws}/computes/{NAME}", self._compute_delete),
            route("GET", "vmsizes", f"{sizes}/vmSizes", self._vm_sizes),
            route("GET", "usages", f"{sizes}/usages", self._usages),
            route("GET", "model.list", f"{ws}/models", self._model_list),
            route("GET", "model.versions", f"{ws}/models/{NAME}/versions", self._model_versions),
            route("GET", "model", f"{ws}/models/{NAME}/versions/{NAME}", self._model_get),
            route("PUT", "model", f"{ws}/models/{NAME}/versions/{NAME}", self._model_put),
        ]

    # -- the workspace ---------------------------------------------------------------------

    def _workspace(self, call: Call, m: re.Match[str]) -> Reply:
        scope = self.scope
        return json_reply(
            200,
            {
                "id": scope.ws_path,
                "name": scope.workspace,
                "location": scope.location,
                "kind": "Default",
                "properties": {
                    "mlFlowTrackingUri": (
                        f"azureml://{scope.location}.api.azureml.ms/mlflow/v1.0{scope.ws_path}"
                    ),
                    "workspaceId": "fake-workspace-id",
                    "friendlyName": scope.workspace,
                    "discoveryUrl": f"{scope.region_host}/discovery",
                },
            },
        )

    # -- computes ------------------------------------------------------------------------------

    def add_compute(
        self,
        name: str,
        size: str,
        *,
        state: str = "Succeeded",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """A cluster that already exists (not created by the harness)."""
        self.computes[name] = self._compute_body(
            name,
            {
                "location": self.scope.location,
                "tags": dict(tags or {}),
                "properties": {
                    "computeType": "AmlCompute",
                    "properties": {
                        "vmSize": size,
                        "vmPriority": "Dedicated",
                        "scaleSettings": {"maxNodeCount": 2, "minNodeCount": 0},
                    },
                },
            },
            state,
        )

    def _compute_body(
        self, name: str, body: Mapping[str, Any], state: str, error: str = "allocation failed"
    ) -> dict[str, Any]:
        props = copy.deepcopy(dict(body.get("properties", {})))
        props["provisioningState"] = state
        if state == "Failed":
            props["provisioningErrors"] = [
                {"error": {"code": "ResourceOperationFailure", "message": error}}
            ]
        return {
            "id": f"{self.scope.ws_path}/computes/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": body.get("location", self.scope.location),
            "tags": body.get("tags") or {},
            "properties": props,
        }

    def _compute_list(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, {"value": list(self.computes.values())})

    def _compute_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.computes.get(m.group(1))
        if body is None:
            return error_reply(404, "ResourceNotFound", f"compute {m.group(1)} not found")
        return json_reply(200, body)

    def _compute_put(self, call: Call, m: re.Match[str]) -> Reply:
        name, body = m.group(1), call.body
        if name in self.taken_in_region:
            return error_reply(400, "UserError", NAME_TAKEN)
        tier = body["properties"]["properties"].get("vmPriority", "Dedicated")
        quota = tier in self.quota_tiers
        self.computes[name] = self._compute_body(name, body, "Creating")

        def outcome() -> tuple[str, str]:
            return ("Failed", QUOTA_FAILURE) if quota else ("Succeeded", "")

        def done(status: str) -> None:
            state = "Failed" if quota else self.created_state
            self.computes[name] = self._compute_body(name, body, state, QUOTA_FAILURE)

        headers = self.ops.accept(Operation("compute", outcome, done, percent=True))
        return json_reply(201, self._created_body(self.computes[name]), headers)

    @staticmethod
    def _created_body(stored: Mapping[str, Any]) -> dict[str, Any]:
        """The PUT's 201 answer as recorded: ``vmSize`` upper-cased, ``tags`` null (the GET
        that follows has them)."""
        body = copy.deepcopy(dict(stored))
        inner = body["properties"].get("properties") or {}
        if inner.get("vmSize"):
            inner["vmSize"] = str(inner["vmSize"]).upper()
        body["tags"] = None
        return body

    def _compute_delete(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        if self.delete_fails:
            return error_reply(409, "Conflict", f"compute {name} is busy: a job is running")
        if name not in self.computes:
            return error_reply(404, "ResourceNotFound", f"compute {name} not found")
        self.computes[name]["properties"]["provisioningState"] = "Deleting"

        def done(status: str) -> None:
            self.computes.pop(name, None)

        operation = Operation("delete", lambda: ("Succeeded", ""), done, percent=True)
        return 202, self.ops.accept(operation), ""  # Azure-AsyncOperation only, as recorded

    def _vm_sizes(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(
            200,
            {
                "value": [
                    {
                        "name": name,
                        "family": family,
                        "vCPUs": vcpus,
                        "gpus": gpus,
                        "osVhdSizeMB": 1047552,
                        "maxResourceVolumeMB": 65536,
                        "memoryGB": vcpus * 9.0,
                        "lowPriorityCapable": True,
                        "premiumIO": True,
                        "supportedComputeTypes": ["AmlCompute", "ComputeInstance"],
                    }
                    for name, family, vcpus, gpus in self.sizes
                ]
            },
        )

    def _usages(self, call: Call, m: re.Match[str]) -> Reply:
        entries = [
            usage_entry(self.scope, family, current, limit)
            for family, (current, limit) in self.usage.items()
        ]
        return json_reply(200, {"value": entries})

    # -- the workspace's model versions ----------------------------------------------------

    def _model_body(self, name: str, version: str, props: Mapping[str, Any]) -> dict[str, Any]:
        stored = {k: v for k, v in props.items() if v is not None}
        uri = str(stored.get("modelUri", ""))
        job = re.match(r"azureml://jobs/([^/]+)/outputs/([^/]+)", uri)
        if job and self.model_lineage == "jobName":
            stored["jobName"] = job.group(1)  # ModelVersionProperties.jobName
        elif job:  # the artifact store path the job's output lives at
            stored["modelUri"] = (
                f"azureml://subscriptions/{self.scope.subscription}/"
                f"resourcegroups/{self.scope.resource_group}/workspaces/"
                f"{self.scope.workspace}/datastores/workspaceartifactstore/"
                f"paths/ExperimentRun/dcid.{job.group(1)}/{job.group(2)}"
            )
        return {
            "id": f"{self.scope.ws_path}/models/{name}/versions/{version}",
            "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "properties": {"flavors": {}, **stored, "provisioningState": "Succeeded"},
        }

    def _model_put(self, call: Call, m: re.Match[str]) -> Reply:
        key = (m.group(1), m.group(2))
        if self.archive_fails and call.body["properties"].get("isArchived"):
            return error_reply(409, "Conflict", f"model {key[0]}:{key[1]} is in use")
        self.models[key] = self._model_body(*key, call.body["properties"])
        return json_reply(200, self.models[key])

    def _model_get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.models.get((m.group(1), m.group(2)))
        if body is None:
            return error_reply(404, "UserError", f"model {m.group(1)}:{m.group(2)} not found")
        return json_reply(200, body)

    def _model_list(self, call: Call, m: re.Match[str]) -> Reply:
        names = sorted({name for name, _ in self.models})
        return json_reply(
            200,
            {
                "value": [
                    {"id": f"{self.scope.ws_path}/models/{n}", "name": n, "properties": {}}
                    for n in names
                ]
            },
        )

    def _model_versions(self, call: Call, m: re.Match[str]) -> Reply:
        if not any(name == m.group(1) for name, _ in self.models):
            # a workspace answers an unknown name with 404, where a registry answers an empty
            # page (Corrections 2026-12, item 3, from the model e2etests recordings)
            return error_reply(404, "UserError", f"Model container {m.group(1)} not found")
        active_only = call.query.get("listViewType", ["ActiveOnly"])[0] == "ActiveOnly"
        return json_reply(
            200,
            {
                "value": [
                    body
                    for (name, _), body in self.models.items()
                    if name == m.group(1)
                    and not (active_only and body["properties"].get("isArchived"))
                ]
            },
        )
