"""Endpoint, deployment, scoring and deletion failures on Azure, as the service reports them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from azure_fake import FakeAzureML, fake_azure

pytestmark = pytest.mark.unit

TAGS = {"harness-run-id": "hfake0001"}
QUOTA = ("InferencingClientCreateDeploymentFailed: Not enough quota available for "
         "Standard_NC6s_v3 in SubscriptionId 0000")


@pytest.fixture()
def env() -> Iterator[tuple[FakeAzureML, Any]]:
    with fake_azure() as started:
        yield started


def _model(fake: FakeAzureML) -> Any:
    from harness.backends.base import RegisteredModel

    name = "Phi-3-mini-4k-instruct-ultrachat-200k"
    return RegisteredModel(name, "1", f"{fake.ws_id}/models/{name}/versions/1", "job", TAGS)


def _endpoint(env: Any) -> Any:
    _, backend = env
    backend.begin_create_endpoint("ep-test", TAGS)
    return backend.wait_for_endpoint("ep-test", timeout_s=5)


def _deploy(env: Any, timeout_s: float = 5) -> Any:
    fake, backend = env
    return backend.deploy(_endpoint(env), _model(fake), "dep-1", "Standard_NC6s_v3", TAGS,
                          timeout_s)


def test_failed_endpoint_provisioning_is_a_deployment_error(env: Any) -> None:
    from harness.errors import DeploymentError

    fake, _ = env
    fake.endpoint_state = "Failed"
    with pytest.raises(DeploymentError, match=r"ep-test failed to provision.*internal error"):
        _endpoint(env)


def test_endpoint_still_creating_at_the_deadline_is_reported(env: Any) -> None:
    from harness.errors import DeploymentError

    fake, backend = env
    fake.hold.add("endpoint")
    pending = backend.begin_create_endpoint("ep-test", TAGS)
    assert pending.provisioning_state == "Creating"
    with pytest.raises(DeploymentError, match="still Creating after 0s; teardown deletes it"):
        backend.wait_for_endpoint("ep-test", timeout_s=0.02)


def test_another_worker_waits_for_the_endpoint_by_reading_its_state(env: Any) -> None:
    """A pytest-xdist worker that did not start the creation has no poller: it polls GET."""
    from azure_fake import make_backend
    from harness.errors import DeploymentError

    fake, backend = env
    fake.hold.add("endpoint")
    backend.begin_create_endpoint("ep-test", TAGS)
    other = make_backend(backend.config, fake)
    other_gets = len(fake.calls("endpoint", "GET"))
    with pytest.raises(DeploymentError, match="still Creating after 0s"):
        other.wait_for_endpoint("ep-test", timeout_s=0.02)
    assert len(fake.calls("endpoint", "GET")) > other_gets
    fake.release("endpoint")
    backend.wait_for_endpoint("ep-test", timeout_s=5)
    assert other.wait_for_endpoint("ep-test", timeout_s=5).provisioning_state == "Succeeded"


def test_failed_deployment_carries_the_container_logs(env: Any) -> None:
    from harness.errors import DeploymentError

    fake, _ = env
    fake.deployment_state = "Failed"
    with pytest.raises(DeploymentError) as failure:
        _deploy(env)
    message = str(failure.value)
    assert "deployment dep-1 on endpoint ep-test" in message
    assert "OperationFailed: Operation failed or canceled" in message
    assert "Liveness probe failed" in message  # the logs: the real cause
    assert [c.body for c in fake.calls("deployment.logs")] == [{"tail": 200}]


def test_deployment_quota_failure_says_quota(env: Any) -> None:
    from harness.errors import DeploymentError

    fake, _ = env
    fake.deployment_state, fake.deployment_error = "Failed", QUOTA
    with pytest.raises(DeploymentError, match=r"quota for Standard_NC6s_v3 is exhausted.*"
                                              "--instance-type"):
        _deploy(env)


def test_deployment_past_the_deadline_carries_the_logs(env: Any) -> None:
    from harness.errors import DeploymentError

    fake, _ = env
    fake.hold.add("deployment")
    with pytest.raises(DeploymentError, match=r"(?s)still not ready after 0s.*Liveness probe"):
        _deploy(env, timeout_s=0.02)
    assert not fake.calls("endpoint", "PUT")[1:], "no traffic for a deployment that failed"


def test_http_200_with_an_error_body_is_a_scoring_failure(env: Any) -> None:
    from harness.errors import ScoringError
    from harness.scoring import parse_response

    fake, backend = env
    deployment = _deploy(env)
    fake.score_body = {"error": "CUDA error: device-side assert", "exception": "RuntimeError"}
    reply = backend.invoke(_endpoint(env), deployment, {"input_data": {}})
    assert reply.status_code == 200
    with pytest.raises(ScoringError, match="device-side assert"):
        parse_response(reply.body, reply.status_code)


def test_http_error_from_the_scoring_uri_is_returned_not_raised(env: Any) -> None:
    fake, backend = env
    deployment = _deploy(env)
    fake.score_status = 424
    fake.score_body = {"error": {"code": "UserError", "message": "model failed", "status": 424}}
    reply = backend.invoke(_endpoint(env), deployment, {"input_data": {}})
    assert (reply.status_code, "model failed" in reply.body) == (424, True)


def test_endpoint_deletion_is_always_sent_and_failures_are_loud(env: Any) -> None:
    from harness.errors import CleanupError

    fake, backend = env
    _endpoint(env)
    fake.delete_fails = {"endpoint"}
    with pytest.raises(CleanupError, match=r"ep-test could not be deleted.*harness sweep"):
        backend.delete_endpoint("ep-test", 5)
    assert len(fake.calls("endpoint", "DELETE")) == 1
    fake.delete_fails = set()
    backend.delete_endpoint("never-created", 5)  # already gone: nothing to do
    assert len(fake.calls("endpoint", "DELETE")) == 2


def test_endpoint_still_deleting_at_the_deadline_is_left_to_the_sweep(env: Any) -> None:
    from harness.errors import CleanupError

    fake, backend = env
    _endpoint(env)
    fake.hold.add("delete")
    with pytest.raises(CleanupError, match="still deleting after 0s; the deletion goes on"):
        backend.delete_endpoint("ep-test", 0.02)


def test_model_archive_failure_is_a_cleanup_error(env: Any) -> None:
    from harness.errors import CleanupError

    fake, backend = env
    fake.state.models[(_model(fake).name, "1")] = {"properties": {}}
    fake.delete_fails = {"model"}
    with pytest.raises(CleanupError, match="could not be archived"):
        backend.delete_model(_model(fake).ref, 5)
