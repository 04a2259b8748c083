"""Endpoint, deployment, scoring and deletion on Azure, as the service answers: every scoring
status comes back as a reply with its reason (401, 408, 424 with the model-error headers, 429
retried per Retry-After within the deadline, 5xx), the endpoint DELETE is followed through its
``Location`` header, and failures carry the deployment logs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.backends.base import Deployment, Endpoint, RegisteredModel
from tests.support.azure_fake import AzureRig, azure_config, fake_azure
from tests.support.azure_fake.endpoints import Score, model_error, throttled, timed_out

TAGS = {"harness-run-id": "hfake0001"}
QUOTA = (
    "InferencingClientCreateDeploymentFailed: Not enough quota available for "
    "Standard_NC24ads_A100_v4 in SubscriptionId 0000"
)
INSTANCE = "Standard_NC24ads_A100_v4"
REQUEST: dict[str, Any] = {"input_data": {"input_string": [{"role": "user", "content": "Hi"}]}}


def _model(rig: AzureRig) -> RegisteredModel:
    name = "Phi-4-ultrachat-200k"
    return RegisteredModel(
        name, "1", f"{rig.fake.scope.ws_path}/models/{name}/versions/1", "job", TAGS
    )


def _endpoint(rig: AzureRig) -> Endpoint:
    rig.backend.begin_create_endpoint("ep-test", TAGS)
    return rig.backend.wait_for_endpoint("ep-test", timeout_s=5)


def _deploy(rig: AzureRig, timeout_s: float = 5) -> Deployment:
    return rig.backend.deploy(_endpoint(rig), _model(rig), "dep-1", INSTANCE, TAGS, timeout_s)


def test_failed_endpoint_provisioning_is_a_deployment_error(azure: AzureRig) -> None:
    from harness.errors import DeploymentError

    azure.fake.endpoints.endpoint_state = "Failed"
    with pytest.raises(DeploymentError, match=r"ep-test failed to provision.*internal error"):
        _endpoint(azure)


def test_endpoint_still_creating_at_the_deadline_is_reported(azure: AzureRig) -> None:
    from harness.errors import DeploymentError

    azure.fake.ops.hold.add("endpoint")
    pending = azure.backend.begin_create_endpoint("ep-test", TAGS)
    assert pending.provisioning_state == "Creating"
    with pytest.raises(DeploymentError, match="still Creating after 0s; teardown deletes it"):
        azure.backend.wait_for_endpoint("ep-test", timeout_s=0.02)


def test_another_worker_waits_for_the_endpoint_by_reading_its_state(azure: AzureRig) -> None:
    """A pytest-xdist worker that did not start the creation has no poller: it polls GET."""
    from harness.errors import DeploymentError
    from tests.support.azure_fake import make_backend

    azure.fake.ops.hold.add("endpoint")
    azure.backend.begin_create_endpoint("ep-test", TAGS)
    other = make_backend(azure.backend.config)
    other_gets = len(azure.fake.calls("endpoint", "GET"))
    with pytest.raises(DeploymentError, match="still Creating after 0s"):
        other.wait_for_endpoint("ep-test", timeout_s=0.02)
    assert len(azure.fake.calls("endpoint", "GET")) > other_gets
    azure.fake.ops.release("endpoint")
    azure.backend.wait_for_endpoint("ep-test", timeout_s=5)
    assert other.wait_for_endpoint("ep-test", timeout_s=5).provisioning_state == "Succeeded"


def test_failed_deployment_carries_the_container_logs(azure: AzureRig) -> None:
    from harness.errors import DeploymentError

    azure.fake.endpoints.deployment_state = "Failed"
    with pytest.raises(DeploymentError) as failure:
        _deploy(azure)
    message = str(failure.value)
    assert "deployment dep-1 on endpoint ep-test" in message
    assert "OperationFailed: Operation failed or canceled" in message
    assert "Liveness probe failed" in message  # the logs: the real cause
    assert [c.body for c in azure.fake.calls("deployment.logs")] == [{"tail": 200}]


def test_deployment_quota_failure_says_quota(azure: AzureRig) -> None:
    from harness.errors import DeploymentError

    azure.fake.endpoints.deployment_state, azure.fake.endpoints.deployment_error = "Failed", QUOTA
    with pytest.raises(
        DeploymentError,
        match=rf"quota for {INSTANCE} is exhausted.*"
        "--instance-type",
    ):
        _deploy(azure)


def test_deployment_past_the_deadline_carries_the_logs(azure: AzureRig) -> None:
    from harness.errors import DeploymentError

    azure.fake.ops.hold.add("deployment")
    with pytest.raises(DeploymentError, match=r"(?s)still not ready after 0s.*Liveness probe"):
        _deploy(azure, timeout_s=0.02)
    assert not azure.fake.calls("endpoint", "PUT")[1:], "no traffic for a deployment that failed"


# ---- scoring: every status is a reply with a reason ----------------------------------------


def test_http_200_with_an_error_body_is_a_scoring_failure(azure: AzureRig) -> None:
    from harness.errors import ScoringError
    from harness.scoring import parse_response

    deployment = _deploy(azure)
    azure.fake.endpoints.score = Score(
        200, {"error": "CUDA error: device-side assert", "exception": "RuntimeError"}
    )
    reply = azure.backend.invoke(_endpoint(azure), deployment, REQUEST)
    assert reply.status_code == 200
    with pytest.raises(ScoringError, match="device-side assert"):
        parse_response(reply.body, reply.status_code)


@pytest.mark.parametrize(
    "answer, status, reason",
    [
        (timed_out(), 408, "did not answer within request_timeout_ms"),
        (
            model_error("500", "Internal Server Error"),
            424,
            "model error: the scoring container answered 500 (Internal Server Error)",
        ),
        (
            model_error("422", "Unprocessable Entity", body="not json at all"),
            424,
            "the scoring container answered 422 (Unprocessable Entity)",
        ),
        (Score(503, "upstream overloaded"), 503, "overloaded or scaling"),
        (
            Score(500, {"error": {"code": "InternalError", "message": "boom"}}),
            500,
            "internal error",
        ),
    ],
)
def test_every_scoring_status_comes_back_with_a_reason(
    azure: AzureRig, answer: Score, status: int, reason: str
) -> None:
    deployment = _deploy(azure)
    azure.fake.endpoints.score = answer
    reply = azure.backend.invoke(_endpoint(azure), deployment, REQUEST)
    assert reply.status_code == status and reason in reply.reason
    assert reply.body == (answer.body if isinstance(answer.body, str) else reply.body)
    assert f"HTTP {status} ({reply.reason})" in reply.summary()
    assert len(azure.fake.calls("score")) == 1, "no retry after a failure a POST may repeat"


def test_the_sdks_invoke_crashes_where_the_harness_replies(azure: AzureRig) -> None:
    """Why the harness sends the request itself: azure-ai-ml 1.35's invoke raises TypeError on
    408 and AttributeError on a 424 whose error is a string."""
    import json
    import tempfile

    deployment = _deploy(azure)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as request:
        json.dump(REQUEST, request)
    for answer, crash in ((timed_out(), TypeError), (model_error(), AttributeError)):
        azure.fake.endpoints.score = answer
        with pytest.raises(crash):
            azure.backend.workspace.online_endpoints.invoke(
                "ep-test", deployment_name=deployment.name, request_file=request.name
            )
        reply = azure.backend.invoke(_endpoint(azure), deployment, REQUEST)
        assert reply.status_code == answer.status


def test_429_is_retried_per_retry_after_within_the_deadline(
    azure: AzureRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    deployment = _deploy(azure)
    azure.fake.endpoints.scores = [throttled("2"), throttled("3")]
    reply = azure.backend.invoke(_endpoint(azure), deployment, REQUEST)
    assert reply.status_code == 200 and "Paris" in reply.body
    assert slept == [2.0, 3.0] and len(azure.fake.calls("score")) == 3


def test_a_429_whose_wait_would_pass_the_deadline_comes_back_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with fake_azure(azure_config(scoring_timeout_s="10")) as rig:
        deployment = _deploy(rig)
        rig.fake.endpoints.scores = [throttled("30")]
        reply = rig.backend.invoke(_endpoint(rig), deployment, REQUEST)
        assert reply.status_code == 429 and "too many requests" in reply.reason
        assert len(rig.fake.calls("score")) == 1
    assert 30.0 not in slept


def test_without_the_key_the_raw_request_is_refused_with_a_reason(azure: AzureRig) -> None:
    endpoint = _endpoint(azure)
    reply = azure.backend.invoke_raw(endpoint, REQUEST, None)
    assert reply.status_code == 401 and "endpoint key" in reply.reason
    assert "Authorization" not in azure.fake.calls("score")[-1].headers


# ---- deletion -----------------------------------------------------------------------------


def test_endpoint_deletion_answers_both_headers_and_is_polled_as_recorded(
    azure: AzureRig,
) -> None:
    """As recorded (test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.json):
    202 with Azure-AsyncOperation AND Location, body null; the SDK polls the status URL, which
    answers Updating until Succeeded."""
    _endpoint(azure)
    status_polls = len(azure.fake.calls("operation"))
    azure.fake.ops.latency["delete"] = 0.05
    azure.backend.delete_endpoint("ep-test", 5)
    (delete,) = azure.fake.calls("endpoint", "DELETE")
    assert delete.status == 202 and delete.reply_body == "null"
    assert {"Azure-AsyncOperation", "Location"} <= set(delete.reply_headers)
    assert "ep-test" not in azure.fake.endpoints.endpoints
    polls = azure.fake.calls("operation")[status_polls:]
    assert [p.reply_body for p in polls][-1] == '{"status": "Succeeded"}'
    assert any('"Updating"' in p.reply_body for p in polls), "in progress reads Updating"


def test_endpoint_operations_report_updating_and_a_traffic_update_answers_creating(
    azure: AzureRig,
) -> None:
    azure.fake.ops.latency["endpoint"] = 0.05
    _endpoint(azure)
    polls = azure.fake.calls("operation")
    assert polls and all('"InProgress"' not in p.reply_body for p in polls)
    assert any('"Updating"' in p.reply_body for p in polls)
    _deploy(azure)  # then all traffic to the deployment: a PUT on the existing endpoint
    creation, *updates = azure.fake.calls("endpoint", "PUT")
    assert updates, "the traffic update is a PUT of the endpoint"
    for put in (creation, *updates):
        assert json.loads(put.reply_body)["properties"]["provisioningState"] == "Creating"


def test_endpoint_deletion_is_always_sent_and_failures_are_loud(azure: AzureRig) -> None:
    from harness.errors import CleanupError

    _endpoint(azure)
    azure.fake.endpoints.delete_fails = True
    with pytest.raises(CleanupError, match=r"ep-test could not be deleted.*harness sweep"):
        azure.backend.delete_endpoint("ep-test", 5)
    assert len(azure.fake.calls("endpoint", "DELETE")) == 1
    azure.fake.endpoints.delete_fails = False
    azure.backend.delete_endpoint("never-created", 5)  # already gone: nothing to do
    assert len(azure.fake.calls("endpoint", "DELETE")) == 2


def test_endpoint_still_deleting_at_the_deadline_is_left_to_the_sweep(azure: AzureRig) -> None:
    from harness.errors import CleanupError

    _endpoint(azure)
    azure.fake.ops.hold.add("delete")
    with pytest.raises(CleanupError, match="still deleting after 0s; the deletion goes on"):
        azure.backend.delete_endpoint("ep-test", 0.02)


def test_model_archive_failure_is_a_cleanup_error(azure: AzureRig) -> None:
    from harness.errors import CleanupError

    model = _model(azure)
    azure.fake.workspace.models[(model.name, "1")] = {"properties": {}}
    azure.fake.workspace.archive_fails = True
    with pytest.raises(CleanupError, match="could not be archived"):
        azure.backend.delete_model(model.ref, 5)
