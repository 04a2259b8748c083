"""The ``plan`` dry run: every decision a run would make (SKU, parameters, names, tags), offline.

A bad option or a malformed model card is then found in a second, before anything exists.
The loaders read the JSON a user saves from the registry or the workspace, so that the plan
can be made for a model or region the harness has not shipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import compute, finetune_params, naming
from harness.backends.base import VmSize
from harness.config import HarnessConfig
from harness.errors import ConfigError
from harness.model_card import (
    ModelCard,
    card_from_resource,
    model_card,
    retirement_notice,
    version_from_id,
)

SHIPPED_MODEL_CARD = Path(__file__).parent / "resources" / "phi-3-mini-4k-instruct.model.json"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}; pass a readable JSON file") from exc


def load_model_card(path: Path, default_version: str = "latest") -> ModelCard:
    """A card from a JSON file shaped like the registry's answer: name, version, tags,
    system_metadata (objects or JSON text) and isArchived; or the version resource itself."""
    data = _read_json(path, "model card")
    shape = "see harness/resources/phi-3-mini-4k-instruct.model.json for the shape"
    if isinstance(data, dict) and isinstance(data.get("properties"), dict) and data.get("id"):
        # the version resource as the registry's GET returns it (``id``, ``name`` the model's
        # name, ``properties``): the recorded shape, e.g. saved from a live workspace
        model = data.get("name")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model card {path} has no 'name'; add the model's registry name")
        version = version_from_id(str(data["id"])) or default_version
        return card_from_resource(model, data, version)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tags", {}), dict)
        or not (isinstance(data.get("system_metadata", {}), dict))
    ):
        raise ConfigError(
            f"model card {path} needs 'tags' and/or 'system_metadata' objects (and 'name'); {shape}"
        )
    if "tags" not in data and "system_metadata" not in data:
        raise ConfigError(f"model card {path} has neither 'tags' nor 'system_metadata'; {shape}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model card {path} has no 'name'; add the model's registry name")
    version = str(data.get("version") or default_version)
    model_id = str(
        data.get("id") or f"azureml://registries/azureml/models/{name}/versions/{version}"
    )
    return model_card(
        name,
        version,
        model_id,
        data.get("tags", {}),
        data.get("system_metadata", {}),
        bool(data.get("isArchived")),
    )


def load_vm_sizes(path: Path) -> list[VmSize]:
    """The region's sizes from a JSON file as ``ml_client.compute.list_sizes()`` returns them
    (a list of objects with ``name`` and optionally ``gpus``, ``v_cp_us``, ``family``), or
    the REST answer ``{"value": [...]}`` with ``vCPUs``."""
    data = _read_json(path, "workspace sizes")
    items = data.get("value") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
    ):
        raise ConfigError(
            f"workspace sizes {path} must be a list of objects with a 'name' (as "
            'compute.list_sizes() returns them, or the REST {"value": [...]}); '
            "`python -m harness check --backend azure` prints the region's sizes"
        )
    return [
        VmSize(
            i["name"],
            gpus=int(i.get("gpus") or 0),
            vcpus=int(i.get("v_cp_us") or i.get("vCPUs") or 0),
            family=str(i.get("family") or ""),
        )
        for i in items
    ]


def plan(
    cfg: HarnessConfig,
    model_card_file: Path = SHIPPED_MODEL_CARD,
    component_inputs: Path | None = None,
    workspace_sizes: Path | None = None,
    gpus_per_node: int | None = None,
) -> dict[str, Any]:
    """Every decision of a run, without touching a backend (``python -m harness plan``)."""
    if gpus_per_node is not None and gpus_per_node < 1:
        raise ConfigError(f"--gpus-per-node must be at least 1, got {gpus_per_node}")
    card = load_model_card(model_card_file, cfg.model_version)
    notice = retirement_notice(card, cfg.strict_deprecation)
    sizes = None if workspace_sizes is None else load_vm_sizes(workspace_sizes)
    offered = None if sizes is None else [size.name for size in sizes]
    gpu_counts = None if sizes is None else {size.name: size.gpus for size in sizes}
    explicit = compute.explicit_sizes(card, cfg.compute_sku, cfg.instance_type)
    sku_choice = compute.choose_finetune(card, cfg.compute_sku, offered, gpus=gpu_counts)
    inference = compute.choose_inference(card, cfg.instance_type, offered, gpus=gpu_counts)
    sku, instance_type = sku_choice.name, inference.name
    gpus = gpus_per_node or (
        compute.gpus_for_sku(sku, [(s.name, s.gpus) for s in sizes]) if sizes else 1
    )
    if gpus < 1:
        raise ConfigError(
            f"VM size {sku} has no GPU in {workspace_sizes}; pass --compute-sku with a GPU size"
        )
    inputs = finetune_params.load_component_inputs(component_inputs)
    fitted = finetune_params.plan_parameters(
        card, cfg.finetune_overrides, inputs, cfg.allow_dropped_params
    )
    return {
        "run_id": cfg.run_id,
        "backend": cfg.backend,
        "model": {"name": card.name, "version": card.version, "id": card.id},
        "model_registry": cfg.azure_model_registry,
        "component_registry": cfg.azure_component_registry,
        "model_sources": card.sources(),
        "allow_lists": explicit or card.allow_lists_found(),
        "model_deprecation": card.deprecation.describe(),
        "warnings": [notice] if notice else [],
        "region_checked": sizes is not None,
        "compute_sku": sku,
        "compute_sku_reason": sku_choice.reason,
        "gpus_per_node": gpus,
        "finetune_parameters": fitted.parameters,
        "dropped_parameters": fitted.dropped,
        "display_name": finetune_params.display_name(card.name, fitted.parameters, gpus),
        "instance_type": instance_type,
        "instance_type_reason": inference.reason,
        "endpoint_name": naming.endpoint_name(cfg.run_id),
        "deployment_name": naming.deployment_name(cfg.run_id),
        "tags": naming.ownership_tags(cfg.run_id, cfg.resource_ttl_h),
        "dataset": cfg.dataset,
        "dataset_percent": cfg.dataset_percent,
    }
