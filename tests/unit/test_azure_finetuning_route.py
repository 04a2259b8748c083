"""The FineTuning job route at the HTTP level, managed compute and serverless: what it sends,
how it reads back the job's model, how it deploys, scores and deletes, and how it fails."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import finetune_params, naming
from harness.backends.base import Compute, JobRun, RegisteredModel
from harness.model_card import ModelCard
from tests.support.azure_fake import AzureRig, azure_config, fake_azure, prepared_data
from tests.support.azure_fake.serverless import SERVERLESS_KEY, chat_completion, chat_error

ROUTE = {"finetune_route": "finetuning-job"}
TAGS = naming.ownership_tags("hfake0001", 6.0)


@dataclass
class Trained:
    rig: AzureRig
    card: ModelCard
    compute: Compute
    job: JobRun
    model: RegisteredModel
    parameters: dict[str, Any]


def _rig(**overrides: Any) -> Iterator[AzureRig]:
    with fake_azure(azure_config(**ROUTE, **overrides)) as rig:
        yield rig


@pytest.fixture
def managed() -> Iterator[AzureRig]:
    yield from _rig()


@pytest.fixture
def serverless() -> Iterator[AzureRig]:
    yield from _rig(serverless=True)


def _submit(rig: AzureRig, folder: Path, overrides: dict[str, str] | None = None) -> Trained:
    backend = rig.backend
    folder.mkdir(parents=True, exist_ok=True)
    card = backend.get_foundation_model("Phi-4", "latest")
    plan = finetune_params.plan_parameters(card, overrides or {}, backend.component_inputs())
    compute = backend.ensure_compute(card, "unused-cluster", None, TAGS)
    submitted = backend.submit_finetune(
        card, compute, prepared_data(folder), plan.parameters, "display", TAGS
    )
    job = backend.wait_for_job(submitted, timeout_s=10)
    model = backend.register_model(card, job, TAGS)
    return Trained(rig, card, compute, job, model, plan.parameters)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """One managed run for the tests that only look at it (each submission costs seconds)."""
    for rig in _rig():
        yield _submit(rig, tmp_path_factory.mktemp("managed"))


def _job_body(rig: AzureRig) -> dict[str, Any]:
    (put,) = rig.fake.calls("finetuning.job", "PUT")
    assert put.query["api-version"] == ["2024-10-01-preview"]
    body: dict[str, Any] = put.body["properties"]
    return body


def test_managed_compute_is_the_allow_listed_size_and_no_cluster(trained: Trained) -> None:
    assert trained.compute.sku == "Standard_NC24ads_A100_v4"
    assert trained.compute.gpus_per_node == 1 and not trained.compute.created_by_harness
    assert _job_body(trained.rig)["resources"] == {"instanceTypes": [trained.compute.sku]}
    assert not trained.rig.fake.calls("compute", "PUT")


def test_the_job_carries_both_data_files_typed_hyperparameters_and_the_tags(
    trained: Trained,
) -> None:
    body = _job_body(trained.rig)
    details = body["fineTuningDetails"]
    assert body["jobType"] == "FineTuning" and details["taskType"] == "chatCompletion"
    assert details["model"]["uri"] == trained.card.id
    assert details["trainingData"]["uri"] and details["validationData"]["uri"], "always both"
    params = details["hyperParameters"]
    assert set(params) == set(trained.parameters)
    assert params["num_train_epochs"] == str(trained.parameters["num_train_epochs"])
    assert params["learning_rate"] == str(trained.parameters["learning_rate"])
    assert isinstance(trained.parameters["learning_rate"], float), "typed, then sent as text"
    assert params["apply_lora"] == "true"
    assert all(isinstance(value, str) for value in params.values())
    assert not {"compute_finetune", "number_of_gpu_to_use_finetuning"} & set(params)
    assert body["outputs"]["registered_model"]["assetName"] == "Phi-4-ultrachat-200k"
    assert body["tags"] == TAGS


def test_the_jobs_own_model_is_resolved_with_lineage_and_tagged_for_the_sweep(
    trained: Trained,
) -> None:
    assert (trained.model.name, trained.model.version) == ("Phi-4-ultrachat-200k", "1")
    assert trained.model.job_name == trained.job.name
    assert trained.model.tags == TAGS
    (tagged,) = trained.rig.fake.calls("model", "PUT")
    assert tagged.body["properties"]["tags"] == TAGS


def test_a_version_of_another_job_is_not_taken_for_this_jobs_model(
    managed: AzureRig, tmp_path: Path
) -> None:
    first = _submit(managed, tmp_path / "a")
    managed.fake.jobs.statuses = ["Running", "Completed"]
    second = _submit(managed, tmp_path / "b")
    assert (first.model.version, second.model.version) == ("1", "2")
    assert second.model.job_name == second.job.name != first.job.name


def test_metrics_are_read_from_the_jobs_training_run(trained: Trained) -> None:
    metrics = trained.rig.backend.job_metrics(trained.job)
    assert len(metrics.values("loss")) >= 2


def test_an_unknown_hyperparameter_names_the_closest_before_anything_is_created(
    managed: AzureRig,
) -> None:
    from harness.errors import ParameterError

    card = managed.backend.get_foundation_model("Phi-4", "latest")
    with pytest.raises(ParameterError, match="did you mean learning_rate"):
        finetune_params.plan_parameters(
            card, {"learnin_rate": "1e-5"}, managed.backend.component_inputs()
        )
    assert not [c for c in managed.fake.requests if c.method in ("PUT", "POST", "DELETE")]


def test_a_pipeline_only_input_is_no_hyperparameter_of_the_route(managed: AzureRig) -> None:
    from harness.errors import ParameterError

    card = managed.backend.get_foundation_model("Phi-4", "latest")
    with pytest.raises(ParameterError, match="compute_finetune"):
        finetune_params.plan_parameters(
            card, {"compute_finetune": "other"}, managed.backend.component_inputs()
        )


def test_the_preview_api_refusing_the_job_type_names_the_route_and_the_api_version(
    managed: AzureRig, tmp_path: Path
) -> None:
    from harness.errors import JobError

    managed.fake.finetuning.job_type_removed = True
    with pytest.raises(JobError) as failure:
        _submit(managed, tmp_path)
    message = str(failure.value)
    assert "finetuning-job route" in message and "api-version 2024-10-01-preview" in message
    assert "not a known job type" in message and "2025-12-01" in message
    assert "--finetune-route pipeline" in message


def test_a_failed_job_fails_as_on_the_pipeline_route(managed: AzureRig, tmp_path: Path) -> None:
    from harness.errors import JobError

    managed.fake.jobs.statuses = ["Running", "Failed"]
    with pytest.raises(JobError, match="ended Failed, expected Completed"):
        _submit(managed, tmp_path)
    assert not managed.fake.finetuning.registered


def test_managed_deploys_to_the_key_auth_online_endpoint(trained: Trained) -> None:
    backend = trained.rig.backend
    pending = backend.begin_create_endpoint("ep-hfake0001-abcde", TAGS)
    endpoint = backend.wait_for_endpoint(pending.name, timeout_s=10)
    deployment = backend.deploy(
        endpoint, trained.model, "dep-1", "Standard_NC24ads_A100_v4", TAGS, 10
    )
    assert endpoint.auth_mode == "key" and deployment.model_id == trained.model.id
    assert not trained.rig.fake.calls("serverless", "PUT")


def _serve(rig: AzureRig, folder: Path) -> tuple[Trained, Any]:
    trained = _submit(rig, folder)
    pending = rig.backend.begin_create_endpoint("ep-hfake0001-srvls", TAGS)
    return trained, rig.backend.wait_for_endpoint(pending.name, timeout_s=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Trained, Any]]:
    """One serverless run for the tests that only look and score."""
    for rig in _rig(serverless=True):
        yield _serve(rig, tmp_path_factory.mktemp("serverless"))


@pytest.fixture
def served_here(serverless: AzureRig, tmp_path: Path) -> tuple[Trained, Any]:
    """A serverless run of the test's own, for tests that change or delete it."""
    return _serve(serverless, tmp_path)


def test_serverless_job_has_no_compute_and_no_instance_types(
    served: tuple[Trained, Any],
) -> None:
    trained, _ = served
    assert trained.compute.sku == "serverless" and trained.compute.gpus_per_node == 0
    body = _job_body(trained.rig)
    assert "resources" not in body and not body.get("computeId")


def test_serverless_endpoint_serves_the_jobs_model_with_key_auth(
    served: tuple[Trained, Any],
) -> None:
    trained, endpoint = served
    (put,) = trained.rig.fake.calls("serverless", "PUT")
    model_id = put.body["properties"]["modelSettings"]["modelId"]
    assert model_id == (
        "azureml://locations/eastus/workspaces/fake-workspace-id/models/"
        "Phi-4-ultrachat-200k/versions/1"
    )
    assert put.body["tags"] == TAGS and put.body["sku"] == {"name": "Consumption"}
    assert endpoint.provisioning_state == "Succeeded" and endpoint.auth_mode == "key"
    assert endpoint.scoring_uri == "https://ep-hfake0001-srvls.eastus.models.ai.azure.com"
    deployment = trained.rig.backend.deploy(endpoint, trained.model, "dep", "x", TAGS, 10)
    assert deployment.model_id == trained.model.id and deployment.traffic_percent == 100
    assert not trained.rig.fake.calls("endpoint", "PUT")


def test_serverless_scoring_posts_a_chat_request_with_the_key(
    served: tuple[Trained, Any],
) -> None:
    from harness import scoring

    trained, endpoint = served
    request = scoring.build_request([{"role": "user", "content": "Capital of France?"}])
    reply = trained.rig.backend.invoke(endpoint, None, request)  # type: ignore[arg-type]
    assert reply.status_code == 200
    assert scoring.parse_response(reply.body).text == "The capital of France is Paris."
    chat = trained.rig.fake.serverless.chats[-1]
    assert chat.path == "/v1/chat/completions"
    assert chat.headers["Authorization"] == f"Bearer {SERVERLESS_KEY}"
    assert chat.body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert chat.body["max_tokens"] == 200 and "input_data" not in chat.body


def test_serverless_without_the_key_is_rejected_and_errors_keep_their_reason(
    served: tuple[Trained, Any],
) -> None:
    from harness import scoring
    from harness.errors import ScoringError

    trained, endpoint = served
    backend = trained.rig.backend
    request = scoring.build_request([{"role": "user", "content": "Hi"}])
    assert backend.invoke_raw(endpoint, request, None).status_code == 401
    assert backend.invoke_raw(endpoint, request, "wrong").status_code == 401
    assert backend.invoke_raw(endpoint, request, backend.endpoint_key(endpoint)).status_code == 200
    trained.rig.fake.serverless.replies = [chat_error(429, "TooManyRequests", "slow down")]
    throttled = backend.invoke(endpoint, None, request)  # type: ignore[arg-type]
    assert throttled.status_code == 429 and "too many requests" in throttled.reason
    with pytest.raises(ScoringError, match="is not a success"):
        scoring.parse_response(throttled.body, throttled.status_code)
    trained.rig.fake.serverless.replies = [(200, chat_completion(""))]
    empty = backend.invoke(endpoint, None, request)  # type: ignore[arg-type]
    with pytest.raises(ScoringError, match="holds no generated text"):
        scoring.parse_response(empty.body, empty.status_code)


def test_serverless_endpoint_is_deleted_at_teardown(served_here: tuple[Trained, Any]) -> None:
    trained, endpoint = served_here
    trained.rig.backend.delete_endpoint(endpoint.name, 5)
    assert trained.rig.fake.calls("serverless", "DELETE")
    assert not trained.rig.fake.serverless.endpoints
    trained.rig.backend.delete_endpoint(endpoint.name, 5)  # gone already: fine
    assert not trained.rig.fake.calls("endpoint", "DELETE")


def test_serverless_endpoint_needs_the_model_resolved_first(serverless: AzureRig) -> None:
    from harness.errors import DeploymentError

    pending = serverless.backend.begin_create_endpoint("ep-hfake0001-early", TAGS)
    assert pending.provisioning_state == "NotStarted"
    with pytest.raises(DeploymentError, match="serves the fine-tuned model"):
        serverless.backend.wait_for_endpoint(pending.name, timeout_s=5)
    assert not serverless.fake.calls("serverless", "PUT")


def test_sweep_finds_and_deletes_owned_serverless_endpoints(tmp_path: Path) -> None:
    """Any route's sweep: the janitor does not know which route made what."""
    from harness.backends.base import delete_resource

    with fake_azure(azure_config(**ROUTE, serverless=True)) as rig:
        trained = _submit(rig, tmp_path)
        rig.backend.wait_for_endpoint(rig.backend.begin_create_endpoint("ep-a", TAGS).name, 10)
        rig.fake.serverless.endpoints["stranger"] = {
            **rig.fake.serverless.endpoints["ep-a"],
            "name": "stranger",
            "tags": {},
        }
        with fake_azure() as sweeper:  # a pipeline-route backend on the same fake
            sweeper.fake.serverless.endpoints.update(rig.fake.serverless.endpoints)
            owned = {(r.kind, r.name) for r in sweeper.backend.list_owned_resources()}
            assert ("endpoint", "ep-a") in owned and ("endpoint", "stranger") not in owned
            delete_resource(sweeper.backend, "endpoint", "ep-a", 5)  # type: ignore[arg-type]
            assert sweeper.fake.calls("serverless", "DELETE")
            assert set(sweeper.fake.serverless.endpoints) == {"stranger"}
            assert not sweeper.fake.calls("endpoint", "DELETE")
        assert trained.model.tags == TAGS


def test_a_serverless_endpoint_serving_another_model_is_refused(
    served_here: tuple[Trained, Any],
) -> None:
    from harness.errors import DeploymentError

    trained, endpoint = served_here
    settings = trained.rig.fake.serverless.endpoints[endpoint.name]["properties"]["modelSettings"]
    settings["modelId"] = settings["modelId"].replace("/versions/1", "/versions/7")
    with pytest.raises(DeploymentError, match="not Phi-4-ultrachat-200k:1"):
        trained.rig.backend.deploy(endpoint, trained.model, "dep", "x", TAGS, 10)
