"""The key-authenticated online endpoint, its deployment, scoring and deletion.

The endpoint is started early (its provisioning overlaps the training) and awaited only by the
deployment. A failed deployment's real cause is usually only in the container logs, so every
deployment error carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure_waiting import is_quota, service_message, status_text
from harness.config import BY_NAME
from harness.errors import CleanupError, DeploymentError
from harness.waiting import Deadline

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Deployment, Endpoint, RegisteredModel

REQUEST_TIMEOUT_MS = 90_000
LOG_LINES = 200
SWEEP = "`python -m harness sweep`"


class EndpointCreation:
    """A started endpoint creation (the ``EndpointPoller`` of the Backend protocol)."""

    def __init__(self, workspace: MLClient, name: str, poller: Any) -> None:
        self.workspace, self.name, self.poller = workspace, name, poller

    def done(self) -> bool:
        return bool(self.poller.done())

    def result(self, timeout_s: float) -> Endpoint:
        from azure.core.exceptions import AzureError

        try:
            finished = Deadline(timeout_s).wait(self.poller)
        except AzureError as exc:
            raise DeploymentError(_endpoint_failed(self.name, service_message(exc))) from None
        if not finished:
            raise DeploymentError(
                f"endpoint {self.name} is still being created after {timeout_s:.0f}s; "
                f"teardown deletes it (else {SWEEP}); raise "
                f"{BY_NAME['endpoint_timeout_s'].cli} if this region is slow"
            )
        endpoint = get_endpoint(self.workspace, self.name)
        if endpoint.provisioning_state != "Succeeded":
            raise DeploymentError(_endpoint_failed(
                self.name, f"provisioning state {endpoint.provisioning_state}"))
        return endpoint


def _quota_hint(said: str, otherwise: str) -> str:
    if is_quota(said):
        return (f"leaked endpoints from earlier runs are the usual cause of endpoint quota "
                f"errors: run {SWEEP}")
    return otherwise


def _endpoint_failed(name: str, said: str) -> str:
    hint = _quota_hint(said, "the endpoint's events in the studio say more")
    return (f"endpoint {name} failed to provision ({said}), expected Succeeded; {hint}; "
            "teardown deletes it")


def begin_create_endpoint(workspace: MLClient, name: str,
                          tags: Mapping[str, str]) -> EndpointCreation:
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azure.core.exceptions import AzureError

    endpoint = ManagedOnlineEndpoint(name=name, auth_mode="key", tags=dict(tags),
                                     description="fine-tuning acceptance harness")
    try:
        poller = workspace.online_endpoints.begin_create_or_update(endpoint)
    except AzureError as exc:
        said = service_message(exc)
        raise DeploymentError(f"endpoint {name} could not be created: {said}; " + _quota_hint(
            said, "check the name and the credential's rights on the workspace")) from None
    return EndpointCreation(workspace, name, poller)


def get_endpoint(workspace: MLClient, name: str) -> Endpoint:
    from azure.core.exceptions import AzureError

    from harness.backends.base import Endpoint

    try:
        found = workspace.online_endpoints.get(name)
    except AzureError as exc:
        raise DeploymentError(f"cannot read endpoint {name}: {service_message(exc)}") from None
    return Endpoint(name=str(found.name), scoring_uri=str(found.scoring_uri or ""),
                    auth_mode=str(found.auth_mode), tags=dict(found.tags or {}),
                    provisioning_state=status_text(found.provisioning_state))


def _deployment_spec(endpoint: Endpoint, model: RegisteredModel, name: str,
                     instance_type: str, tags: Mapping[str, str]) -> Any:
    """The seed's deployment plus a readiness probe generous enough for a large model."""
    from azure.ai.ml.entities import (
        ManagedOnlineDeployment,
        OnlineRequestSettings,
        ProbeSettings,
    )

    return ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint.name, model=model.id, instance_type=instance_type,
        instance_count=1, tags=dict(tags),
        liveness_probe=ProbeSettings(initial_delay=600, timeout=10, failure_threshold=30),
        readiness_probe=ProbeSettings(initial_delay=60, period=10, timeout=10,
                                      success_threshold=1, failure_threshold=60),
        request_settings=OnlineRequestSettings(request_timeout_ms=REQUEST_TIMEOUT_MS))


def deploy(workspace: MLClient, endpoint: Endpoint, model: RegisteredModel, name: str,
           instance_type: str, tags: Mapping[str, str], timeout_s: float) -> Deployment:
    """Deploy, check the state, route all traffic to it, and read the traffic back."""
    from azure.core.exceptions import AzureError

    from harness.backends.base import Deployment

    deadline = Deadline(timeout_s)
    spec = _deployment_spec(endpoint, model, name, instance_type, tags)
    try:
        poller = workspace.online_deployments.begin_create_or_update(spec)
        if not deadline.wait(poller):
            raise DeploymentError(_deployment_failed(
                workspace, endpoint.name, name, instance_type,
                f"still not ready after {timeout_s:.0f}s; raise "
                f"{BY_NAME['deployment_timeout_s'].cli}"))
        state = status_text(poller.result().provisioning_state)
    except AzureError as exc:
        raise DeploymentError(_deployment_failed(
            workspace, endpoint.name, name, instance_type, service_message(exc))) from None
    if state != "Succeeded":
        raise DeploymentError(_deployment_failed(
            workspace, endpoint.name, name, instance_type, f"provisioning state {state}"))
    traffic = _route_all_traffic(workspace, endpoint.name, name, deadline)
    return Deployment(name=name, endpoint_name=endpoint.name, model_id=model.id,
                      instance_type=instance_type, provisioning_state=state,
                      traffic_percent=traffic, request_timeout_ms=REQUEST_TIMEOUT_MS)


def _deployment_failed(workspace: MLClient, endpoint: str, name: str, instance_type: str,
                       said: str) -> str:
    hint = (f"the subscription's quota for {instance_type} is exhausted: pass "
            f"{BY_NAME['instance_type'].cli} with another allowed type, request a quota "
            f"increase, or delete leaked endpoints with {SWEEP}") if is_quota(said) else (
            "the container logs below usually name the cause")
    return (f"deployment {name} on endpoint {endpoint} ({instance_type}) failed: {said}; "
            f"expected Succeeded; {hint}\n--- last {LOG_LINES} log lines ---\n"
            f"{_logs(workspace, endpoint, name)}")


def _logs(workspace: MLClient, endpoint: str, name: str) -> str:
    from azure.core.exceptions import AzureError

    try:
        return str(workspace.online_deployments.get_logs(name, endpoint, lines=LOG_LINES))
    except AzureError as exc:
        return f"(logs unavailable: {service_message(exc)})"


def _route_all_traffic(workspace: MLClient, endpoint: str, name: str, deadline: Deadline
                       ) -> int:
    from azure.core.exceptions import AzureError

    try:
        current = workspace.online_endpoints.get(endpoint)
        current.traffic = {name: 100}
        if not deadline.wait(workspace.online_endpoints.begin_create_or_update(current)):
            raise DeploymentError(f"endpoint {endpoint} did not take the traffic update in "
                                  f"time; raise {BY_NAME['deployment_timeout_s'].cli}")
        routed = workspace.online_endpoints.get(endpoint).traffic or {}
    except AzureError as exc:
        raise DeploymentError(f"routing 100% of endpoint {endpoint}'s traffic to {name} "
                              f"failed: {service_message(exc)}") from None
    return int(routed.get(name, 0))


def endpoint_key(workspace: MLClient, name: str) -> str:
    from azure.core.exceptions import AzureError

    try:
        return str(workspace.online_endpoints.get_keys(name).primary_key)
    except AzureError as exc:
        raise DeploymentError(f"cannot read the keys of endpoint {name}: "
                              f"{service_message(exc)}") from None


def delete_endpoint(workspace: MLClient, name: str, timeout_s: float) -> None:
    """Delete (its deployments go with it); a deletion past the deadline goes on in Azure."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        finished = Deadline(timeout_s).wait(workspace.online_endpoints.begin_delete(name))
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise CleanupError(f"endpoint {name} could not be deleted: {service_message(exc)}; "
                           f"it keeps its ownership tags: run {SWEEP}") from None
    if not finished:
        raise CleanupError(f"endpoint {name} was still deleting after {timeout_s:.0f}s; the "
                           f"deletion goes on in Azure and {SWEEP} finishes it if it fails")
