"""The Azure backend's happy path at the HTTP level: what it sends to Azure ML, step by step.

One fake workspace serves the whole workflow once (module scope); each test then checks the
requests of one step. Blob uploads are served over HTTP too (datastore, listSecrets, blob
PUTs), so nothing is faked at the SDK boundary here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.backends.azure import AzureBackend
from harness.backends.base import (
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    RegisteredModel,
    TrainingMetrics,
)
from harness.data import PreparedData
from harness.model_card import ModelCard
from tests.support import DATA
from tests.support.azure_fake import (
    ENDPOINT_KEY,
    FakeAzureML,
    fake_azure,
    make_backend,
    prepared_data,
)

MODEL = "Phi-4"
INSTANCE = "Standard_NC24ads_A100_v4"
CREATING_ROUTES = ("compute", "job", "model", "endpoint", "deployment")


@dataclass
class Run:
    """What the workflow made against the fake, for each test to look at."""

    fake: FakeAzureML
    backend: AzureBackend
    tags: dict[str, str]
    card: ModelCard
    inputs: Any
    compute: Compute
    data: PreparedData
    submitted: JobRun
    job: JobRun
    metrics: TrainingMetrics
    model: RegisteredModel
    endpoint: Endpoint
    deployment: Deployment


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The seed's workflow, run once against the fake."""
    from harness import finetune_params, naming

    with fake_azure() as rig:
        backend = rig.backend
        tags = naming.ownership_tags("hfake0001", 6.0)
        card = backend.get_foundation_model(MODEL, "latest")
        inputs = backend.component_inputs()
        plan = finetune_params.fit_to_component(finetune_params.merge_parameters(card, {}), inputs)
        compute = backend.ensure_compute(card, "gpu-cluster", None, tags)
        pending = backend.begin_create_endpoint("ep-hfake0001-abcde", tags)
        data = prepared_data(tmp_path_factory.mktemp("data"))
        submitted = backend.submit_finetune(card, compute, data, plan.parameters, "display", tags)
        job = backend.wait_for_job(submitted, timeout_s=10)
        metrics = backend.job_metrics(job)
        model = backend.register_model(card, job, tags)
        endpoint = backend.wait_for_endpoint(pending.name, timeout_s=10)
        deployment = backend.deploy(endpoint, model, "dep-1", INSTANCE, tags, 10)
        yield Run(
            rig.fake,
            backend,
            tags,
            card,
            inputs,
            compute,
            data,
            submitted,
            job,
            metrics,
            model,
            endpoint,
            deployment,
        )


def _bodies(fake: FakeAzureML, route: str, method: str = "PUT") -> list[Any]:
    return [call.body for call in fake.calls(route, method)]


def test_creating_the_backend_sends_nothing(run: Run) -> None:
    from harness.backends.base import Backend

    assert isinstance(run.backend, Backend)
    count = len(run.fake.requests)
    make_backend(run.backend.config)
    assert len(run.fake.requests) == count


def test_foundation_model_latest_label_then_the_raw_version(run: Run) -> None:
    assert run.card.label == f"{MODEL}:8"
    assert run.card.id == f"azureml://registries/azureml/models/{MODEL}/versions/8"
    assert run.card.finetune_allow_list and "Standard_NC24ads_A100_v4" in (
        run.card.finetune_allow_list
    )
    assert run.card.finetune_allow_list_source == "system_metadata"
    listing = run.fake.calls("registry.model.versions")[0]
    assert listing.query["$top"] == ["1"] and "createdtime desc" in listing.query["$orderBy"][0]
    assert "listViewType" not in listing.query  # the SDK's latest leaves archived versions out
    assert run.fake.calls("registry.model")[-1].path.endswith(f"/models/{MODEL}/versions/8")
    assert run.backend.get_foundation_model(MODEL, "7").version == "7"


def test_component_inputs_are_the_live_components(run: Run) -> None:
    reference = json.loads((DATA / "chat_completion_pipeline.inputs.json").read_text())["inputs"]
    assert run.inputs.keys() == reference.keys()
    for name, spec in reference.items():
        got = dict(run.inputs[name])
        if spec["type"] == "number" and "default" in spec:
            assert got.pop("default") == float(spec["default"])
            spec = {k: v for k, v in spec.items() if k != "default"}
        assert got == spec, name
    component_get = run.fake.calls("registry.component.versions")[0]
    assert "/components/chat_completion_pipeline/versions" in component_get.path


def test_compute_creation_answers_as_recorded(run: Run) -> None:
    """The PUT's 201 upper-cases vmSize and sends tags null; the operation ends Succeeded with
    percentComplete (test_compute.pyTestComputetest_aml_compute_create_and_delete.json)."""
    (put,) = run.fake.calls("compute", "PUT")
    created = json.loads(put.reply_body)
    assert created["tags"] is None
    assert created["properties"]["properties"]["vmSize"] == "STANDARD_NC24ADS_A100_V4"
    assert run.backend.workspace.compute.get("gpu-cluster").tags == run.tags, "GET has them"
    finished = [json.loads(c.reply_body) for c in run.fake.calls("operation")]
    assert {"status": "Succeeded", "percentComplete": 100.0} in finished


def test_compute_created_dedicated_from_the_allow_list_with_tags(run: Run) -> None:
    (body,) = _bodies(run.fake, "compute")
    props = body["properties"]["properties"]
    assert props["vmSize"] == "Standard_NC24ads_A100_v4"  # first allow-listed, not ND40rs_v2
    assert props["vmPriority"] == "Dedicated"
    assert props["scaleSettings"]["maxNodeCount"] == 2
    assert body["tags"] == run.tags
    assert run.compute.gpus_per_node == 1 and run.compute.created_by_harness
    assert run.fake.calls("vmsizes"), "GPU count must come from the workspace's size list"


def _node(run: Run) -> dict[str, Any]:
    (body,) = _bodies(run.fake, "job")
    (node,) = body["properties"]["jobs"].values()
    return node  # type: ignore[no-any-return]


def test_pipeline_inputs_are_filtered_and_typed(run: Run) -> None:
    inputs = _node(run)["inputs"]
    literal = {k: v["value"] for k, v in inputs.items() if v["job_input_type"] == "literal"}
    assert literal["deepspeed_stage"] == "3" and literal["precision"] == "16"
    assert literal["number_of_gpu_to_use_finetuning"] == "1"
    assert literal["learning_rate"] == "5e-06" and literal["num_train_epochs"] == "1"
    for name in (
        "compute_model_import",
        "compute_preprocess",
        "compute_finetune",
        "compute_model_evaluation",
    ):
        assert literal[name] == "gpu-cluster"
    assert inputs["mlflow_model_path"] == {"uri": run.card.id, "job_input_type": "mlflow_model"}


def test_pipeline_wiring_settings_and_ownership(run: Run) -> None:
    (body,) = _bodies(run.fake, "job")
    props, node = body["properties"], _node(run)
    assert node["componentId"] == (
        "azureml://registries/azureml/components/chat_completion_pipeline/versions/0.0.82"
    )
    assert node["outputs"]["mlflow_model_folder"]["value"] == "${{parent.outputs.trained_model}}"
    assert props["outputs"]["trained_model"]["jobOutputType"] == "mlflow_model"
    assert props["settings"]["force_rerun"] is True
    assert props["settings"]["continue_on_step_failure"] is False
    assert props["experimentName"] == f"chat_completion_{MODEL}"
    assert props["displayName"] == "display" and props["tags"] == run.tags


def test_training_files_are_uploaded_and_referenced(run: Run) -> None:
    inputs = _node(run)["inputs"]
    for split, port in (("train_sft", "train_file_path"), ("test_sft", "test_file_path")):
        uri = inputs[port]["uri"]
        assert inputs[port]["job_input_type"] == "uri_file"
        assert uri.startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
        blob = uri.split("/paths/", 1)[1]
        assert run.fake.storage.blobs[blob] == Path(run.data.files[split]).read_bytes()


def test_job_waited_through_not_responding_and_unknown_until_completed(run: Run) -> None:
    from tests.support.azure_fake.jobs import WALK

    assert run.submitted.status == "NotStarted"
    assert run.job.status == "Completed" and run.job.name == run.submitted.name
    assert run.job.url.startswith(f"https://ml.azure.com/runs/{run.job.name}")
    assert len(run.fake.calls("job", "GET")) == len(WALK)  # NotResponding, Unknown: waited on
    assert not run.fake.calls("job.cancel")


def test_metrics_come_from_the_training_run_through_mlflow_v2(run: Run) -> None:
    assert run.metrics.values("loss") == [2.4, 2.1, 1.9, 1.7]
    assert run.metrics.values("eval_loss") == [1.9, 1.6]
    (search,) = run.fake.calls("mlflow.search")
    assert search.body["filter"] == f"tags.mlflow.rootRunId='{run.job.name}'"
    assert "/mlflow/v2.0/subscriptions/" in search.path  # the plugin's path for MLflow 2 and 3
    histories = {
        c.query["metric_key"][0]: c.query["run_id"][0] for c in run.fake.calls("mlflow.history")
    }
    assert histories["loss"] == run.fake.jobs.training_run_id(run.job.name)
    assert all(
        c.headers["Authorization"].startswith("Bearer ey") for c in run.fake.calls("mlflow.search")
    )


def test_model_registered_from_the_job_output(run: Run) -> None:
    (body,) = _bodies(run.fake, "model")
    props = body["properties"]
    assert props["modelUri"] == f"azureml://jobs/{run.job.name}/outputs/trained_model"
    assert props["modelType"] == "mlflow_model" and props["tags"] == run.tags
    assert run.model.name == f"{MODEL}-ultrachat-200k"
    assert (
        run.fake.workspace.models[(run.model.name, run.model.version)]["properties"]["jobName"]
        == run.model.job_name
        == run.job.name
    )  # lineage as the service reports it
    assert run.model.version.isdigit() and len(run.model.version) >= 14


def test_endpoint_uses_key_auth(run: Run) -> None:
    first = _bodies(run.fake, "endpoint")[0]
    assert first["properties"]["authMode"] == "Key" and first["tags"] == run.tags
    assert run.endpoint.auth_mode == "key" and run.endpoint.provisioning_state == "Succeeded"


def test_deployment_probes_timeout_and_model(run: Run) -> None:
    (body,) = _bodies(run.fake, "deployment")
    props = body["properties"]
    assert props["model"] == run.model.id and props["instanceType"] == INSTANCE
    assert body["sku"]["capacity"] == 1 and body["tags"] == run.tags
    assert props["livenessProbe"]["initialDelay"] == "PT10M"
    assert props["readinessProbe"]["failureThreshold"] >= 30
    assert props["requestSettings"]["requestTimeout"] == "PT1M30S"  # 90000 ms


def test_all_traffic_goes_to_the_deployment(run: Run) -> None:
    assert _bodies(run.fake, "endpoint")[-1]["properties"]["traffic"] == {"dep-1": 100}
    assert run.deployment.traffic_percent == 100
    assert run.deployment.request_timeout_ms == 90_000


def test_every_created_resource_carries_the_ownership_tags(run: Run) -> None:
    for route in CREATING_ROUTES:
        for body in _bodies(run.fake, route):
            tags = body.get("tags") or body["properties"].get("tags")
            assert tags == run.tags, route


def test_invoke_sends_the_key_and_the_deployment(run: Run) -> None:
    from harness import scoring

    request = scoring.build_request([{"role": "user", "content": "Capital of France?"}])
    reply = run.backend.invoke(run.endpoint, run.deployment, request)
    assert scoring.parse_response(reply.body, reply.status_code).text.endswith("Paris.")
    assert (reply.status_code, reply.reason) == (200, "")
    score = run.fake.calls("score")[-1]
    assert score.headers["Authorization"] == f"Bearer {ENDPOINT_KEY}"
    assert score.headers["azureml-model-deployment"] == "dep-1"
    assert score.body == request
    assert run.fake.calls("endpoint.keys", "POST"), "the key comes from listKeys"


def test_raw_requests_without_the_right_key_are_rejected(run: Run) -> None:
    request: dict[str, Any] = {"input_data": {"input_string": []}}
    reply = run.backend.invoke_raw(run.endpoint, request, None)
    assert reply.status_code == 401 and "no valid endpoint key" in reply.reason
    assert "Authorization" not in run.fake.calls("score")[-1].headers
    assert run.backend.invoke_raw(run.endpoint, request, "wrong").status_code == 401
    key = run.backend.endpoint_key(run.endpoint)
    assert run.backend.invoke_raw(run.endpoint, request, key).status_code == 200


def test_sweep_lists_owned_resources_and_deletes_them(run: Run) -> None:
    from harness.backends.base import delete_resource

    owned = {(r.kind, r.name) for r in run.backend.list_owned_resources()}
    model = f"{run.model.name}:{run.model.version}"
    assert owned == {
        ("endpoint", "ep-hfake0001-abcde"),
        ("compute", "gpu-cluster"),
        ("model", model),
    }
    for resource in run.backend.list_owned_resources():
        delete_resource(run.backend, resource.kind, resource.name, 5)
    assert run.fake.calls("endpoint", "DELETE") and run.fake.calls("compute", "DELETE")
    (endpoint_delete,) = run.fake.calls("endpoint", "DELETE")
    (compute_delete,) = run.fake.calls("compute", "DELETE")
    # as recorded: the endpoint's DELETE has both headers, the compute's only the status URL
    assert {"Azure-AsyncOperation", "Location"} <= set(endpoint_delete.reply_headers)
    assert "Azure-AsyncOperation" in compute_delete.reply_headers
    assert "Location" not in compute_delete.reply_headers
    assert _bodies(run.fake, "model")[-1]["properties"]["isArchived"] is True
    assert run.backend.list_owned_resources() == []
    run.fake.check()
