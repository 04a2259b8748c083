"""What the janitor may delete: resources carrying the harness's ownership tags.

Endpoints (their deployments go with them), serverless endpoints (billed hourly while they
exist), clusters the harness created, and the fine-tuned model versions it registered.
Untagged resources are never listed, so never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.backends.azure import serverless
from harness.backends.azure.clients import read_failed, status_text
from harness.backends.base import FINETUNED_SUFFIX, OwnedResource, ResourceKind
from harness.errors import CleanupError
from harness.naming import is_owned

if TYPE_CHECKING:
    from azure.ai.ml import MLClient


def list_owned(workspace: MLClient) -> list[OwnedResource]:
    from azure.core.exceptions import AzureError

    try:
        return [
            *_endpoints(workspace),
            *serverless.list_owned(workspace),
            *_computes(workspace),
            *_models(workspace),
        ]
    except AzureError as exc:
        raise read_failed(
            exc, "its resources", "the workspace", "check the workspace settings", CleanupError
        ) from None


def _owned(kind: ResourceKind, name: str, tags: Any, detail: str) -> list[OwnedResource]:
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    return [OwnedResource(kind=kind, name=name, tags=tags, detail=detail)] if is_owned(tags) else []


def _endpoints(workspace: MLClient) -> list[OwnedResource]:
    return [
        item
        for ep in workspace.online_endpoints.list()
        for item in _owned(
            ResourceKind.ENDPOINT,
            str(ep.name),
            ep.tags,
            f"state {status_text(ep.provisioning_state)}, {ep.scoring_uri}",
        )
    ]


def _computes(workspace: MLClient) -> list[OwnedResource]:
    return [
        item
        for c in workspace.compute.list()
        for item in _owned(
            ResourceKind.COMPUTE,
            str(c.name),
            c.tags,
            f"{getattr(c, 'size', '?')}, state {status_text(c.provisioning_state)}",
        )
    ]


def _models(workspace: MLClient) -> list[OwnedResource]:
    """Versions of the harness's model names only: listing every version would be slow."""
    found: list[OwnedResource] = []
    for container in workspace.models.list():
        if str(container.name).endswith(FINETUNED_SUFFIX):
            for model in workspace.models.list(name=container.name):
                found += _owned(
                    ResourceKind.MODEL,
                    f"{model.name}:{model.version}",
                    model.tags,
                    str(model.path or ""),
                )
    return found
