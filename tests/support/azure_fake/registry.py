"""The system registry: discovery, model versions and the fine-tune pipeline component.

The model versions are this fake's own data, written as the registry answers today, never read
from the harness's files. Sources: Azure/azureml-assets model specs at 4b41f8c (2026-07-23)
``assets/models/system/{Phi-3-mini-4k-instruct,Phi-4,Llama-2-7b-chat}/spec.yaml`` and their
history (PRs #5150 and #5190 moved allow-lists, tasks and deprecation dates from tags to
``system_metadata``); ``scripts/azureml-assets/azureml/assets/publish_utils.py``
(``stringify_dictionary``: versions updated in place carry every dict as JSON text and every
list as its Python repr). The wire key ``properties.system_metadata`` is the one azure-ai-ml
1.35 sends (``_restclient/model_dataplane/operations/_patch.py``).

The version GET follows the service's recorded answer (Azure/azure-sdk-assets
python/sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/
test_model.pyTestModeltest_crud_model_with_system_metadata.json): ``id`` is the asset id, ``name``
the MODEL's name, ``type`` ``models``, and NO system metadata although the PUT before it sent
some. azure-ai-ml expects ``properties.system_metadata`` back; the fake follows the recording.
``Registry.metadata_key`` serves the variant for when the service does send it (under
``system_metadata`` or ``systemMetadata``). Several registries answer (``azureml``,
``azureml-meta``, ``azureml-openai-oss``); the pipeline component lives in ``azureml`` only.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support import DATA
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


def stringified(values: Mapping[str, Any]) -> dict[str, str]:
    """What ``publish_utils.stringify_dictionary`` sends: dicts as JSON, the rest ``str()``."""
    return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in values.items()}


PHI3_DEFAULTS = {
    "apply_deepspeed": "true",
    "deepspeed_stage": 2,
    "apply_lora": "true",
    "apply_ort": "false",
    "precision": 16,
    "ignore_mismatched_sizes": "false",
    "num_train_epochs": 1,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-6,
    "learning_rate_min": 5e-7,
    "learning_rate_max": 5e-5,
    "lr_scheduler_type": "cosine",
    "logging_strategy": "steps",
    "logging_steps": 10,
    "save_total_limit": 1,
}
PHI3_METADATA = {
    "languages": ["en"],
    "tasks": {"fineTuningTasks": ["chat-completion"], "inferenceTasks": ["chat-completion"]},
    "supportedComputes": {
        "inferenceComputes": [
            "Standard_NC6s_v3",
            "Standard_NC12s_v3",
            "Standard_NC24s_v3",
            "Standard_ND40rs_v2",
            "Standard_NC24ads_A100_v4",
            "Standard_NC48ads_A100_v4",
            "Standard_ND96asr_v4",
            "Standard_ND96amsr_A100_v4",
            "Standard_NC96ads_A100_v4",
        ],
        "finetuneComputes": [
            "Standard_NC24ads_A100_v4",
            "Standard_NC48ads_A100_v4",
            "Standard_NC96ads_A100_v4",
            "Standard_ND96asr_v4",
            "Standard_ND96amsr_A100_v4",
        ],
    },
    "deprecation": {
        "finetuneDeprecationDate": "2025-06-30T00:00:00.000000Z",
        "finetuneRetirementDate": "2025-08-30T00:00:00.000000Z",
        "inferenceDeprecationDate": "2025-06-30T00:00:00.000000Z",
        "inferenceLegacyDate": "2025-06-09T00:00:00.000000Z",
        "inferenceRetirementDate": "2025-08-30T00:00:00.000000Z",
    },
    "inferenceSupportedEnvs": ["vllm"],
    "sharedComputeCapacityEnabled": True,
}
PHI4_DEFAULTS = {
    "apply_deepspeed": "true",
    "deepspeed_stage": 3,
    "apply_lora": "true",
    "apply_ort": "false",
    "precision": 16,
    "ignore_mismatched_sizes": "false",
    "num_train_epochs": 1,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-6,
    "lr_scheduler_type": "cosine",
    "logging_strategy": "steps",
    "logging_steps": 10,
    "save_total_limit": 1,
}
A100_H100 = [
    "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4",
    "Standard_NC96ads_A100_v4",
    "Standard_ND96asr_v4",
    "Standard_ND96amsr_A100_v4",
]
PHI4_METADATA = {  # published as a new version: objects, not text
    "languages": ["en"],
    "tasks": {"fineTuningTasks": ["chat-completion"], "inferenceTasks": ["chat-completion"]},
    "supportedComputes": {
        "inferenceComputes": [
            *A100_H100,
            "Standard_ND96isr_H100_v5",
            "Standard_NC40ads_H100_v5",
            "Standard_NC80adis_H100_v5",
        ],
        "finetuneComputes": [
            *A100_H100,
            "Standard_NC40ads_H100_v5",
            "Standard_NC80adis_H100_v5",
            "Standard_ND96isr_H100_v5",
        ],
    },
    "inferenceSupportedEnvs": ["vllm"],
}
LLAMA2_TAGS = stringified(
    {  # the tag form, before #5150 (Llama-2-7b-chat spec at 1aa6cc4)
        "task": "chat-completion",
        "FinetuneDeprecationDate": "2025-03-31",
        "FinetuneRetirementDate": "2025-06-30",
        "InferenceDeprecationDate": "2025-03-31",
        "InferenceRetirementDate": "2025-06-30",
        "finetune_compute_allow_list": [
            "Standard_ND40rs_v2",
            "Standard_NC48ads_A100_v4",
            "Standard_NC96ads_A100_v4",
            "Standard_ND96asr_v4",
            "Standard_ND96amsr_A100_v4",
        ],
        "inference_compute_allow_list": [
            "Standard_NC12s_v3",
            "Standard_NC24s_v3",
            "Standard_ND40rs_v2",
            "Standard_ND96asr_v4",
            "Standard_ND96amsr_A100_v4",
        ],
        "model_specific_defaults": {
            "apply_deepspeed": "true",
            "apply_lora": "true",
            "precision": 16,
            "num_train_epochs": 1,
        },
    }
)


RECORDING = (
    "Azure/azure-sdk-assets python/sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/"
    "test_model.pyTestModeltest_crud_model_with_system_metadata.json"
)
COMPONENT_REGISTRY = "azureml"
REGISTRIES = ("azureml", "azureml-meta", "azureml-openai-oss")
LLAMA31_METADATA = {  # the fake's own data for a model in a second registry (azureml-meta)
    "tasks": {"fineTuningTasks": ["chat-completion"], "inferenceTasks": ["chat-completion"]},
    "supportedComputes": {"finetuneComputes": A100_H100, "inferenceComputes": A100_H100},
}


@dataclass
class RegistryModel:
    """One model version as the registry stores it (its resource's ``properties``)."""

    name: str
    version: str
    created: str
    tags: dict[str, str]
    system_metadata: dict[str, Any] | None = None
    archived: bool = False
    registry: str = "azureml"
    properties: dict[str, str] = field(default_factory=dict)  # the asset's properties dict


def default_models() -> list[RegistryModel]:
    phi3_tags = stringified(
        {"_aml_system_vanity_registry": "azureml-phi", "model_specific_defaults": PHI3_DEFAULTS}
    )
    phi4_tags = stringified({"model_specific_defaults": PHI4_DEFAULTS})
    return [
        # archived on 2026-06-02 and migrated in place: system metadata as JSON text
        RegistryModel(
            "Phi-3-mini-4k-instruct",
            "14",
            "2024-09-01T00:00:00Z",
            phi3_tags,
            stringified(PHI3_METADATA),
            archived=True,
        ),
        RegistryModel(
            "Phi-3-mini-4k-instruct",
            "15",
            "2025-01-10T00:00:00Z",
            phi3_tags,
            stringified(PHI3_METADATA),
            archived=True,
        ),
        RegistryModel("Phi-4", "7", "2025-11-03T00:00:00Z", phi4_tags, PHI4_METADATA),
        RegistryModel("Phi-4", "8", "2026-06-20T00:00:00Z", phi4_tags, PHI4_METADATA),
        RegistryModel("Llama-2-7b-chat", "26", "2024-11-20T00:00:00Z", LLAMA2_TAGS),
        # the default Azure model; its compute lists are not public, so it stores none (the
        # version number is the fake's own)
        RegistryModel("Phi-4-mini-instruct", "1", "2026-03-01T00:00:00Z", phi4_tags),
        RegistryModel(
            "Meta-Llama-3.1-8B-Instruct",
            "4",
            "2025-10-01T00:00:00Z",
            stringified({"model_specific_defaults": PHI4_DEFAULTS}),
            LLAMA31_METADATA,
            registry="azureml-meta",
        ),
    ]


def default_component() -> dict[str, Any]:
    """chat_completion_pipeline 0.0.82's declared interface (tests/support/data, the fake's own
    copy of azureml-assets' pipeline_components/chat_completion/spec.yaml)."""
    return json.loads((DATA / "chat_completion_pipeline.inputs.json").read_text())  # type: ignore[no-any-return]


@dataclass
class Registry:
    scope: Scope
    models: list[RegistryModel] = field(default_factory=default_models)
    component: dict[str, Any] = field(default_factory=default_component)
    registries: tuple[str, ...] = REGISTRIES
    # None: the version GET carries no system metadata, as recorded; else the wire key it uses
    metadata_key: str | None = None

    def routes(self) -> list[Route]:
        scope = self.scope
        reg = re.escape(scope.registry_host) + re.escape(scope.registry_path_of("@")).replace(
            "@", NAME
        )
        discovery = re.escape(f"{scope.region_host}/registrymanagement/v1.0/registries/") + (
            f"{NAME}/discovery"
        )
        return [
            route("GET", "registry.discovery", discovery, self._discovery),
            route(
                "GET",
                "registry.model.versions",
                f"{reg}/models/{NAME}/versions",
                self._model_versions,
            ),
            route("GET", "registry.model", f"{reg}/models/{NAME}/versions/{NAME}", self._model),
            route(
                "GET",
                "registry.component.versions",
                f"{reg}/components/{NAME}/versions",
                self._component_versions,
            ),
            route(
                "GET",
                "registry.component",
                f"{reg}/components/{NAME}/versions/{NAME}",
                self._component,
            ),
        ]

    def _discovery(self, call: Call, m: re.Match[str]) -> Reply:
        # fields as recorded (RECORDING's first entry); azure-ai-ml _utils/_registry_utils.py
        # RegistryDiscovery reads registryName, subscriptionId, resourceGroup,
        # primaryRegionResourceProviderUri
        scope, name = self.scope, m.group(1)
        if name not in self.registries:
            return error_reply(404, "UserError", f"registry {name} not found")
        return json_reply(
            200,
            {
                "registryName": name,
                "subscriptionId": scope.registry_subscription,
                "resourceGroup": scope.registry_resource_group,
                "primaryRegion": scope.location,
                "regions": [scope.location],
                "workspaceName": None,
                "primaryRegionResourceProviderUri": f"{scope.registry_host}/",
            },
        )

    def model_body(self, model: RegistryModel) -> dict[str, Any]:
        """The version GET as recorded (RECORDING's last entry): ``name`` is the model's
        name, ``type`` is ``models``, the version only in ``id``; system metadata only in the
        ``metadata_key`` variant."""
        asset = (
            f"azureml://registries/{model.registry}/models/{model.name}/versions/{model.version}"
        )
        props: dict[str, Any] = {
            "description": f"{model.name} foundation model",
            "tags": dict(model.tags),
            "properties": dict(model.properties),
            "isArchived": model.archived,
            "isAnonymous": False,
            "flavors": {},
            "modelType": "mlflow_model",
            "modelUri": asset,
            "originAssetId": None,
            "jobName": None,
            "intellectualProperty": None,
        }
        if self.metadata_key and model.system_metadata is not None:
            props[self.metadata_key] = copy.deepcopy(model.system_metadata)
        return {
            "id": asset,
            "name": model.name,
            "type": "models",
            "properties": props,
            "systemData": {
                "createdAt": model.created,
                "createdBy": "Sanitized",
                "createdByType": "User",
                "lastModifiedAt": model.created,
                "lastModifiedBy": "Sanitized",
                "lastModifiedByType": "User",
            },
        }

    def _in(self, registry: str, name: str) -> list[RegistryModel]:
        return [x for x in self.models if (x.registry, x.name) == (registry, name)]

    def _model_versions(self, call: Call, m: re.Match[str]) -> Reply:
        """Newest first; an unknown name answers an empty page, as recorded (RECORDING's
        second entry: ``{"value": []}`` for ``$orderBy=createdtime desc&$top=1``). Without
        ``listViewType`` only active versions, as the REST API's ListViewType default
        (ActiveOnly) says: so an archived model's ``latest`` listing is empty (not recorded)."""
        view = call.query.get("listViewType", ["ActiveOnly"])[0].casefold()
        found = sorted(self._in(m.group(1), m.group(2)), key=lambda x: x.created, reverse=True)
        found = [
            x for x in found if {"all": True, "archivedonly": x.archived}.get(view, not x.archived)
        ]
        top = int(call.query.get("$top", [len(found)])[0])
        return json_reply(200, {"value": [self.model_body(x) for x in found[:top]]})

    def _model(self, call: Call, m: re.Match[str]) -> Reply:
        for model in self._in(m.group(1), m.group(2)):
            if model.version == m.group(3):
                return json_reply(200, self.model_body(model))
        # authored: no recording shows an unknown registry version's GET
        return error_reply(
            404, "UserError", f"model {m.group(2)}:{m.group(3)} not found in registry"
        )

    def _component_body(self) -> dict[str, Any]:
        spec = self.component
        asset = (
            f"azureml://registries/{COMPONENT_REGISTRY}/components/{spec['name']}/"
            f"versions/{spec['version']}"
        )
        return {
            "id": asset,
            "name": spec["version"],
            "properties": {
                "isAnonymous": False,
                "tags": {},
                "properties": {},
                "componentSpec": {
                    "name": spec["name"],
                    "version": spec["version"],
                    "type": "pipeline",
                    "display_name": spec["name"],
                    "inputs": copy.deepcopy(spec["inputs"]),
                    "outputs": copy.deepcopy(spec["outputs"]),
                    "jobs": {},
                },
            },
        }

    def _component_versions(self, call: Call, m: re.Match[str]) -> Reply:
        if (m.group(1), m.group(2)) != (COMPONENT_REGISTRY, self.component["name"]):
            return json_reply(200, {"value": []})
        return json_reply(200, {"value": [self._component_body()]})

    def _component(self, call: Call, m: re.Match[str]) -> Reply:
        if (m.group(1), m.group(2)) != (COMPONENT_REGISTRY, self.component["name"]):
            return error_reply(404, "UserError", f"component {m.group(1)} not found")
        return json_reply(200, self._component_body())
