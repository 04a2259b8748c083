"""The key-authenticated online endpoint: creation (started early, so that its minutes of
provisioning overlap the training), waiting for it from any process, its keys and deletion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import is_quota, service_message, status_text
from harness.config import BY_NAME
from harness.errors import CleanupError, DeploymentError
from harness.waiting import Deadline, Heartbeat, wait_poller

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Endpoint

SWEEP = "`python -m harness sweep`"
POLL_S = 5.0  # between GETs of an endpoint another process is creating


def wait_for_endpoint(
    workspace: MLClient, name: str, poller: Any | None, timeout_s: float
) -> Endpoint:
    """Wait for the creation: through its SDK poller in the process that started it, else by
    reading the endpoint's state (another pytest-xdist worker started it)."""
    from azure.core.exceptions import AzureError

    deadline = Deadline(timeout_s)
    heartbeat = Heartbeat(f"endpoint {name} creation", deadline)
    try:
        settled = (
            wait_poller(heartbeat, poller)
            if poller is not None
            else deadline.until(lambda: _settled(workspace, name, heartbeat), POLL_S)
        )
    except AzureError as exc:
        raise DeploymentError(_endpoint_failed(name, service_message(exc))) from None
    endpoint = get_endpoint(workspace, name)
    if not settled:
        raise DeploymentError(
            f"endpoint {name} is still {endpoint.provisioning_state or 'being created'} after "
            f"{timeout_s:.0f}s; teardown deletes it (else {SWEEP}); raise "
            f"{BY_NAME['endpoint_timeout_s'].cli} if this region is slow"
        )
    if endpoint.provisioning_state != "Succeeded":
        raise DeploymentError(
            _endpoint_failed(name, f"provisioning state {endpoint.provisioning_state}")
        )
    return endpoint


def _settled(workspace: MLClient, name: str, heartbeat: Heartbeat) -> bool:
    from harness.backends.base import ENDPOINT_SETTLED

    state = get_endpoint(workspace, name).provisioning_state
    heartbeat.beat(state)
    return state in ENDPOINT_SETTLED


def _quota_hint(said: str, otherwise: str) -> str:
    if is_quota(said):
        return (
            f"leaked endpoints from earlier runs are the usual cause of endpoint quota "
            f"errors: run {SWEEP}"
        )
    return otherwise


def _endpoint_failed(name: str, said: str) -> str:
    hint = _quota_hint(said, "the endpoint's events in the studio say more")
    return (
        f"endpoint {name} failed to provision ({said}), expected Succeeded; {hint}; "
        "teardown deletes it"
    )


def begin_create_endpoint(workspace: MLClient, name: str, tags: Mapping[str, str]) -> Any:
    """Start the creation; returns the SDK's poller (``wait_for_endpoint`` waits on it)."""
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azure.core.exceptions import AzureError

    endpoint = ManagedOnlineEndpoint(
        name=name, auth_mode="key", tags=dict(tags), description="fine-tuning acceptance harness"
    )
    try:
        poller = workspace.online_endpoints.begin_create_or_update(endpoint)
    except AzureError as exc:
        said = service_message(exc)
        raise DeploymentError(
            f"endpoint {name} could not be created: {said}; "
            + _quota_hint(said, "check the name and the service's message")
        ) from None
    return poller


def get_endpoint(workspace: MLClient, name: str) -> Endpoint:
    from azure.core.exceptions import AzureError

    from harness.backends.base import Endpoint

    try:
        found = workspace.online_endpoints.get(name)
    except AzureError as exc:
        raise DeploymentError(f"cannot read endpoint {name}: {service_message(exc)}") from None
    return Endpoint(
        name=str(found.name),
        scoring_uri=str(found.scoring_uri or ""),
        auth_mode=str(found.auth_mode),
        tags=dict(found.tags or {}),
        provisioning_state=status_text(found.provisioning_state),
    )


def endpoint_key(workspace: MLClient, name: str) -> str:
    """The primary key. ``get_keys`` answers what the endpoint's auth mode gives: keys
    (``listKeys``) for a key endpoint, but an access token (``POST .../token``) for an AMLToken
    one, as the SDK's recording test_online_endpoint_e2e shows (tools/sdk_recordings/
    online_endpoint_lifecycle.json): that has no key to read, which is said, not a traceback."""
    from azure.core.exceptions import AzureError

    try:
        keys = workspace.online_endpoints.get_keys(name)
    except AzureError as exc:
        raise DeploymentError(
            f"cannot read the keys of endpoint {name}: {service_message(exc)}"
        ) from None
    primary = getattr(keys, "primary_key", None)
    if not primary:
        raise DeploymentError(
            f"endpoint {name} has no key (the service answered a {type(keys).__name__}: it "
            "authenticates with tokens, not keys); the harness scores only the key-authenticated "
            f"endpoints it creates: delete this one, or run {SWEEP} if it carries the harness's "
            "tags"
        )
    return str(primary)


def delete_endpoint(workspace: MLClient, name: str, timeout_s: float) -> None:
    """Delete (its deployments go with it); a deletion past the deadline goes on in Azure.

    The live service answers the DELETE with 202, ``Azure-AsyncOperation`` and ``Location``
    (mfeOperationResults) and a ``null`` body, and the SDK's ARMPolling polls the status URL
    until Succeeded (the SDK's recording test_online_endpoint_e2e, replayed by the unit suite;
    rest-api-specs' OnlineEndpoint/delete.json shows ``Location`` only)."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    heartbeat = Heartbeat(f"endpoint {name} deletion", Deadline(timeout_s))
    try:
        finished = wait_poller(heartbeat, workspace.online_endpoints.begin_delete(name))
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise CleanupError(
            f"endpoint {name} could not be deleted: {service_message(exc)}; "
            f"it keeps its ownership tags: run {SWEEP}"
        ) from None
    if not finished:
        raise CleanupError(
            f"endpoint {name} was still deleting after {timeout_s:.0f}s; the "
            f"deletion goes on in Azure and {SWEEP} finishes it if it fails"
        )
