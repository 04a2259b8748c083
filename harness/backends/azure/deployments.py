"""The deployment behind the endpoint: create it, check it, route all traffic to it.

A failed deployment's real cause is usually only in the container logs
(``online_deployments.get_logs``), so every deployment error carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import is_quota, service_message, status_text
from harness.backends.azure.endpoints import SWEEP
from harness.backends.base import REQUEST_TIMEOUT_MS
from harness.config import BY_NAME
from harness.errors import DeploymentError
from harness.waiting import Deadline, Heartbeat, wait_poller

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Deployment, Endpoint, RegisteredModel

LOG_LINES = 200


def _deployment_spec(
    endpoint: Endpoint,
    model: RegisteredModel,
    name: str,
    instance_type: str,
    tags: Mapping[str, str],
) -> Any:
    """The seed's deployment plus a readiness probe generous enough for a large model."""
    from azure.ai.ml.entities import (
        ManagedOnlineDeployment,
        OnlineRequestSettings,
        ProbeSettings,
    )

    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=endpoint.name,
        model=model.id,
        instance_type=instance_type,
        instance_count=1,
        tags=dict(tags),
        liveness_probe=ProbeSettings(initial_delay=600, timeout=10, failure_threshold=30),
        readiness_probe=ProbeSettings(
            initial_delay=60, period=10, timeout=10, success_threshold=1, failure_threshold=60
        ),
        request_settings=OnlineRequestSettings(request_timeout_ms=REQUEST_TIMEOUT_MS),
    )


def deploy(
    workspace: MLClient,
    endpoint: Endpoint,
    model: RegisteredModel,
    name: str,
    instance_type: str,
    tags: Mapping[str, str],
    timeout_s: float,
) -> Deployment:
    """Deploy, check the state, route all traffic to it, and read the traffic back."""
    from azure.core.exceptions import AzureError

    from harness.backends.base import Deployment

    deadline = Deadline(timeout_s)
    spec = _deployment_spec(endpoint, model, name, instance_type, tags)
    try:
        poller = workspace.online_deployments.begin_create_or_update(spec)
        heartbeat = Heartbeat(
            f"deployment {name} on endpoint {endpoint.name} ({instance_type})", deadline
        )
        if not wait_poller(heartbeat, poller):
            raise DeploymentError(
                _deployment_failed(
                    workspace,
                    endpoint.name,
                    name,
                    instance_type,
                    f"still not ready after {timeout_s:.0f}s; raise "
                    f"{BY_NAME['deployment_timeout_s'].cli}",
                )
            )
        state = status_text(poller.result().provisioning_state)
    except AzureError as exc:
        raise DeploymentError(
            _deployment_failed(workspace, endpoint.name, name, instance_type, service_message(exc))
        ) from None
    if state != "Succeeded":
        raise DeploymentError(
            _deployment_failed(
                workspace, endpoint.name, name, instance_type, f"provisioning state {state}"
            )
        )
    traffic = _route_all_traffic(workspace, endpoint.name, name, deadline)
    return Deployment(
        name=name,
        endpoint_name=endpoint.name,
        model_id=model.id,
        instance_type=instance_type,
        provisioning_state=state,
        traffic_percent=traffic,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )


def _deployment_failed(
    workspace: MLClient, endpoint: str, name: str, instance_type: str, said: str
) -> str:
    hint = (
        (
            f"the subscription's quota for {instance_type} is exhausted: pass "
            f"{BY_NAME['instance_type'].cli} with another allowed type, request a quota "
            f"increase, or delete leaked endpoints with {SWEEP}"
        )
        if is_quota(said)
        else ("the container logs below usually name the cause")
    )
    return (
        f"deployment {name} on endpoint {endpoint} ({instance_type}) failed: {said}; "
        f"expected Succeeded; {hint}\n--- last {LOG_LINES} log lines ---\n"
        f"{_logs(workspace, endpoint, name)}"
    )


def _logs(workspace: MLClient, endpoint: str, name: str) -> str:
    from azure.core.exceptions import AzureError

    try:
        return str(workspace.online_deployments.get_logs(name, endpoint, lines=LOG_LINES))
    except AzureError as exc:
        return f"(logs unavailable: {service_message(exc)})"


def _route_all_traffic(workspace: MLClient, endpoint: str, name: str, deadline: Deadline) -> int:
    from azure.core.exceptions import AzureError

    try:
        current = workspace.online_endpoints.get(endpoint)
        current.traffic = {name: 100}
        poller = workspace.online_endpoints.begin_create_or_update(current)
        if not wait_poller(Heartbeat(f"endpoint {endpoint} traffic update", deadline), poller):
            raise DeploymentError(
                f"endpoint {endpoint} did not take the traffic update in "
                f"time; raise {BY_NAME['deployment_timeout_s'].cli}"
            )
        routed = workspace.online_endpoints.get(endpoint).traffic or {}
    except AzureError as exc:
        raise DeploymentError(
            f"routing 100% of endpoint {endpoint}'s traffic to {name} "
            f"failed: {service_message(exc)}"
        ) from None
    return int(routed.get(name, 0))
