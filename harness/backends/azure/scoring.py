"""Scoring requests: the seed's request through azure-core, and as a plain HTTPS client would.

azure-ai-ml's ``online_endpoints.invoke`` cannot carry every status a real endpoint answers
(azure-ai-ml 1.35, ``azure/ai/ml/_utils/_endpoint_utils.py`` ``validate_response``): HTTP 408
raises ``TypeError`` (it builds ``ServiceRequestTimeoutError`` without a message), a 424 whose
JSON ``error`` is a string raises ``AttributeError``, and a non-JSON error body comes back as an
``MlException`` without its status. It also writes the key into the class-level
``EndpointInvokeFields.DEFAULT_HEADER`` dict that every later call shares. So ``invoke`` sends
the same request itself (the endpoint's key from ``online_endpoints.get_keys``, the
``azureml-model-deployment`` header) through an azure-core pipeline whose ``RetryPolicy``
retries 429 per ``Retry-After`` while the wait fits the scoring deadline. Every status comes
back as a ``ScoringReply`` with a readable reason; judging the body is ``harness.scoring``'s job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.backends.azure.endpoints import endpoint_key
from harness.errors import ScoringError
from harness.waiting import Deadline

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Deployment, Endpoint, ScoringReply, Secret

MAX_RETRIES = 5
MODEL_ERROR_STATUS = "ms-azureml-model-error-statuscode"
MODEL_ERROR_REASON = "ms-azureml-model-error-reason"
# What a status means to an online endpoint's client: the Azure ML docs, "Troubleshoot online
# endpoint deployment and scoring", HTTP status codes
# (https://learn.microsoft.com/azure/machine-learning/how-to-troubleshoot-online-endpoints).
MEANINGS = {
    401: "not authorized: the request has no valid endpoint key or token",
    404: "no such endpoint or deployment at this URI",
    408: "the model did not answer within request_timeout_ms",
    429: "too many requests: over the endpoint's rate limit, or more requests pending than "
    "2 x max_concurrent_requests_per_instance x instances",
    500: "internal error in the endpoint's infrastructure",
    502: "the scoring container is not answering (crashed or still starting)",
    503: "the deployment is overloaded or scaling; retry later",
}


def reason_for(status: int, headers: Mapping[str, str]) -> str:
    """A readable reason; for 424 the scoring container's own status and reason, which the
    service passes in the ``ms-azureml-model-error-*`` headers."""
    if 200 <= status < 300:
        return ""
    if status == 424:
        code = headers.get(MODEL_ERROR_STATUS, "?")
        said = headers.get(MODEL_ERROR_REASON, "no reason given")
        return f"model error: the scoring container answered {code} ({said})"
    return MEANINGS.get(status, "server error" if status >= 500 else "client error")


def invoke(
    workspace: MLClient,
    endpoint: Endpoint,
    deployment: Deployment,
    request: Mapping[str, Any],
    timeout_s: float,
) -> ScoringReply:
    """POST the request with the endpoint's key to the deployment; any status is a reply."""
    from harness.backends.base import Secret

    key = Secret(endpoint_key(workspace, endpoint.name))
    return _post(endpoint.scoring_uri, request, key, deployment.name, Deadline(timeout_s))


def _post(
    url: str, request: Mapping[str, Any], key: Secret, deployment: str, deadline: Deadline
) -> ScoringReply:
    """No reply at all is the harness's ``ScoringError``, raised outside the ``except`` and
    from frames whose arguments hold the key only as a ``Secret``: pytest prints every
    frame's arguments, and azure-core's frames are handed the headers."""
    from azure.core import PipelineClient
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    from harness.backends.base import ScoringReply

    client: PipelineClient[Any, Any] = PipelineClient(url, policies=_policies(deadline))
    started = time.monotonic()
    try:
        with client:
            reply = client.send_request(
                HttpRequest("POST", url, json=dict(request), headers=_headers(key, deployment))
            )
            reply.read()
    except AzureError as exc:  # no answer at all; the message holds no header, no key
        failure = f"{type(exc).__name__}: {exc.message}"
    else:
        return ScoringReply(
            reply.status_code,
            reply.text(),
            time.monotonic() - started,
            reason_for(reply.status_code, reply.headers),
        )
    raise ScoringError(
        f"POST {url} got no reply within {deadline.seconds:g} s ({failure}); "
        "check that the endpoint exists and is reachable from here"
    )


def _headers(key: Secret, deployment: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.reveal()}", "azureml-model-deployment": deployment}


def _policies(deadline: Deadline) -> list[Any]:
    from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

    class ThrottledOnly(RetryPolicy[Any, Any]):
        """azure-core's RetryPolicy, for 429 alone and only while the wait it is told to
        make fits the deadline: a POST is not safe to repeat after other failures, and a
        Retry-After past the deadline would turn a clear 429 into a timeout."""

        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            wait = self.get_retry_after(response) or 0.0
            return (
                response.http_response.status_code == 429
                and settings["total"] > 0
                and wait < deadline.remaining
            )

    class AttemptTimeout(SansIOHTTPPolicy[Any, Any]):
        """Each attempt may wait for its answer only as long as the deadline has left."""

        def on_request(self, request: Any) -> None:
            left = max(deadline.remaining, 0.001)
            request.context.options["connection_timeout"] = left
            request.context.options["read_timeout"] = left

    return [ThrottledOnly(retry_total=MAX_RETRIES, timeout=deadline.seconds), AttemptTimeout()]


def invoke_raw(
    endpoint: Endpoint, request: Mapping[str, Any], key: Secret | str | None, timeout_s: float
) -> ScoringReply:
    """POST to the scoring URI as a plain HTTPS client would (``harness.backends.http``)."""
    from harness.backends.base import Secret
    from harness.backends.http import post_score

    return post_score(
        endpoint.scoring_uri,
        request,
        Secret.wrap(key),
        timeout_s,
        f"check that endpoint {endpoint.name} exists and is reachable from here",
        reason=reason_for,
    )
