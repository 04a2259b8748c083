"""Serverless endpoints: the FineTuning route's serverless model, deployed and scored.

The SDK's ``serverless_endpoints`` operations (azure-ai-ml 1.35, api-version 2024-01-01-preview)
create a ``ServerlessEndpoint`` from a workspace model id in the form the azureml-examples
notebook uses (``azureml://locations/{region}/workspaces/{workspace id}/models/{name}/versions/
{version}``; a registry version is refused by the SDK). The endpoint serves the Azure AI model
inference chat API at ``{scoring_uri}/v1/chat/completions`` with the endpoint's key, and is
billed hourly while it exists, so teardown deletes it like an online endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import read_failed, service_message, status_text
from harness.errors import CleanupError, DeploymentError
from harness.naming import is_owned
from harness.waiting import Deadline, Heartbeat, wait_poller

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import (
        Deployment,
        Endpoint,
        OwnedResource,
        RegisteredModel,
        ScoringReply,
        Secret,
    )

CHAT_PATH = "/v1/chat/completions"
DETAIL = "serverless endpoint"  # how the sweep's listing marks one (deleted here, not as online)
SWEEP = "`python -m harness sweep --backend azure`"
# The harness's generation parameters -> the OpenAI chat request's fields (max_new_tokens is
# max_tokens there; do_sample has no counterpart: a temperature above 0 samples).
CHAT_FIELDS = {"temperature": "temperature", "top_p": "top_p", "max_new_tokens": "max_tokens"}


def model_uri(workspace: MLClient, model: RegisteredModel) -> str:
    """The model id a serverless endpoint takes (the notebook's form)."""
    from azure.core.exceptions import AzureError

    name = str(workspace.workspace_name)
    try:
        found = workspace.workspaces.get(name)
    except AzureError as exc:
        raise read_failed(
            exc, f"workspace {name}", "the subscription", "check the workspace settings"
        ) from None
    workspace_id = getattr(found, "_workspace_id", None) or found.id
    return (
        f"azureml://locations/{found.location}/workspaces/{workspace_id}/models/"
        f"{model.name}/versions/{model.version}"
    )


def create(
    workspace: MLClient,
    name: str,
    model: RegisteredModel,
    tags: Mapping[str, str],
    timeout_s: float,
) -> Endpoint:
    """Create the endpoint for ``model`` and wait until it answers Succeeded."""
    from azure.ai.ml.entities import ServerlessEndpoint
    from azure.core.exceptions import AzureError

    spec = ServerlessEndpoint(name=name, model_id=model_uri(workspace, model), tags=dict(tags))
    deadline = Deadline(timeout_s)
    heartbeat = Heartbeat(f"serverless endpoint {name} for {model.ref}", deadline)
    try:
        done = wait_poller(heartbeat, workspace.serverless_endpoints.begin_create_or_update(spec))
    except AzureError as exc:
        raise DeploymentError(
            f"serverless endpoint {name} for model {model.ref} could not be created: "
            f"{service_message(exc)}; check that the workspace's region serves the model "
            "serverless (`python -m harness check`)"
        ) from None
    if not done:
        raise DeploymentError(
            f"serverless endpoint {name} was not ready within {timeout_s:.0f}s; raise "
            "--endpoint-timeout"
        )
    made = get(workspace, name)
    if made.provisioning_state != "Succeeded":
        raise DeploymentError(
            f"serverless endpoint {name} ended {made.provisioning_state}, expected Succeeded"
        )
    return made


def _read(workspace: MLClient, name: str) -> Any:
    from azure.core.exceptions import AzureError

    try:
        return workspace.serverless_endpoints.get(name)
    except AzureError as exc:
        raise DeploymentError(
            f"cannot read serverless endpoint {name}: {service_message(exc)}"
        ) from None


def get(workspace: MLClient, name: str) -> Endpoint:
    from harness.backends.base import Endpoint

    found = _read(workspace, name)
    return Endpoint(
        name=str(found.name),
        scoring_uri=str(found.scoring_uri or ""),
        auth_mode=str(found.auth_mode or "key").lower(),  # the service says "Key"
        provisioning_state=_state(found.provisioning_state),
        tags=dict(found.tags or {}),
    )


def _state(value: Any) -> str:
    """The SDK snake-cases the state ("succeeded"); the harness speaks the service's words."""
    text = status_text(value)
    return text[:1].upper() + text[1:]


def deployment(workspace: MLClient, endpoint: Endpoint, model: RegisteredModel) -> Deployment:
    """A serverless endpoint is its own deployment (all traffic, one model): checked to
    serve ``model`` as the service reports it."""
    from harness.backends.base import REQUEST_TIMEOUT_MS, SERVERLESS_COMPUTE, Deployment

    found = _read(workspace, endpoint.name)
    served = str(found.model_id or "")
    if not served.endswith(f"/models/{model.name}/versions/{model.version}"):
        raise DeploymentError(
            f"serverless endpoint {endpoint.name} serves {served or '(no model)'}, not "
            f"{model.ref}; delete it and run again"
        )
    return Deployment(
        name=endpoint.name,
        endpoint_name=endpoint.name,
        model_id=model.id,
        instance_type=SERVERLESS_COMPUTE,
        provisioning_state=_state(found.provisioning_state),
        traffic_percent=100,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )


def key(workspace: MLClient, name: str) -> str:
    from azure.core.exceptions import AzureError

    try:
        return str(workspace.serverless_endpoints.get_keys(name).primary_key)
    except AzureError as exc:
        raise DeploymentError(
            f"cannot read the keys of serverless endpoint {name}: {service_message(exc)}"
        ) from None


def chat_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The harness's scoring request (``harness.scoring.build_request``) as an OpenAI chat
    request: the conversation as ``messages``, the generation parameters renamed."""
    data = request.get("input_data", {})
    messages = data.get("input_string", [])
    if messages and isinstance(messages[0], list):  # the notebook's nested form
        messages = messages[0]
    parameters = data.get("parameters", {})
    chat = {CHAT_FIELDS[k]: v for k, v in parameters.items() if k in CHAT_FIELDS}
    return {"messages": list(messages), **chat}


def invoke(
    endpoint: Endpoint, request: Mapping[str, Any], key_: Secret | None, timeout_s: float
) -> ScoringReply:
    """POST the chat request to the endpoint's chat route, as the notebook's client does."""
    from harness.backends.azure.scoring import reason_for
    from harness.backends.http import post_score

    return post_score(
        endpoint.scoring_uri.rstrip("/") + CHAT_PATH,
        chat_request(request),
        key_,
        timeout_s,
        f"check serverless endpoint {endpoint.name} in the studio",
        reason=reason_for,
    )


def delete(workspace: MLClient, name: str, timeout_s: float) -> None:
    """Delete it (202 and a ``Location`` to poll, rest-api-specs 2024-01-01-preview
    ServerlessEndpoint/delete.json); gone already is fine."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    heartbeat = Heartbeat(f"serverless endpoint {name} deletion", Deadline(timeout_s))
    try:
        finished = wait_poller(heartbeat, workspace.serverless_endpoints.begin_delete(name))
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise CleanupError(
            f"serverless endpoint {name} could not be deleted: {service_message(exc)}; it "
            f"is billed while it exists and keeps its ownership tags: run {SWEEP}"
        ) from None
    if not finished:
        raise CleanupError(
            f"serverless endpoint {name} was still deleting after {timeout_s:.0f}s; the "
            f"deletion goes on in Azure and {SWEEP} finishes it if it fails"
        )


def list_owned(workspace: MLClient) -> list[OwnedResource]:
    """Owned serverless endpoints, for the sweep (deleted through ``delete``)."""
    from harness.backends.base import OwnedResource, ResourceKind

    found = []
    for ep in workspace.serverless_endpoints.list():
        tags = {str(k): str(v) for k, v in (ep.tags or {}).items()}
        if is_owned(tags):
            detail = f"{DETAIL}, state {_state(ep.provisioning_state)}, {ep.scoring_uri}"
            found.append(OwnedResource(ResourceKind.ENDPOINT, str(ep.name), tags, detail))
    return found
