"""The fine-tune job on Azure: only Completed passes, the deadline cancels, metrics via MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from azure_fake import FakeAzureML, fake_azure, prepared_data

pytestmark = pytest.mark.unit


@pytest.fixture()
def env() -> Iterator[tuple[FakeAzureML, Any]]:
    with fake_azure() as started:
        yield started


def _job(fake: FakeAzureML, name: str = "brave_job_1") -> Any:
    from harness.backends.base import JobRun

    url = fake.add_job(name)
    return JobRun(name=name, display_name="display", status="NotStarted", url=url,
                  experiment=fake.experiment)


def test_failed_job_reports_its_step_error_and_studio_url(env: Any) -> None:
    from harness.errors import JobError

    fake, backend = env
    fake.job_statuses = ["Running", "Failed"]
    with pytest.raises(JobError) as failure:
        backend.wait_for_job(_job(fake), timeout_s=5)
    message = str(failure.value)
    assert "ended Failed, expected Completed" in message
    assert "step finetune Failed: UserError: Execution failed: CUDA out of memory" in message
    assert "https://ml.azure.com/runs/brave_job_1" in message


def test_a_canceled_job_fails(env: Any) -> None:
    """jobs.stream() returns normally on Canceled: the harness must not."""
    from harness.errors import JobError

    fake, backend = env
    fake.job_statuses = ["Queued", "Canceled"]
    with pytest.raises(JobError, match="ended Canceled, expected Completed"):
        backend.wait_for_job(_job(fake), timeout_s=5)
    assert not fake.calls("job.cancel")


@pytest.mark.parametrize("status", ["NotResponding", "Paused", "Unknown"])
def test_states_that_are_not_final_are_waited_on_until_the_deadline(env: Any, status: str
                                                                     ) -> None:
    """azure-ai-ml calls NotResponding and Paused terminal; the service does not end a job
    there, so the harness keeps waiting and cancels the job at its deadline."""
    from harness.errors import JobError

    fake, backend = env
    fake.job_statuses = ["Queued", status]
    with pytest.raises(JobError, match=f"did not finish within 0s \\(last status {status}\\)"):
        backend.wait_for_job(_job(fake), timeout_s=0.05)
    assert fake.calls("job.cancel")


def test_job_is_cancelled_at_the_deadline(env: Any) -> None:
    from harness.errors import JobError

    fake, backend = env
    fake.job_statuses = ["Running"]
    with pytest.raises(JobError, match=r"within 0s \(last status Running\); it was cancelled "
                                       r"at the deadline; raise --job-timeout"):
        backend.wait_for_job(_job(fake), timeout_s=0.02)
    (cancel,) = fake.calls("job.cancel")
    assert cancel.path.endswith("/jobs/brave_job_1/cancel")


def test_teardown_cancels_only_a_job_that_has_not_ended(env: Any) -> None:
    fake, backend = env
    fake.job_statuses = ["Completed"]
    backend.delete_job(_job(fake, "done_job").name, 5)
    assert not fake.calls("job.cancel")
    fake.job_statuses = ["NotResponding"]
    backend.delete_job(_job(fake, "running_job").name, 5)
    assert [c.path.rsplit("/", 2)[-2] for c in fake.calls("job.cancel")] == ["running_job"]


def test_a_job_without_a_training_run_has_no_metrics(env: Any) -> None:
    from harness.errors import JobError

    fake, backend = env
    fake.training_metrics = {"loss": [1.0]}  # no "epoch": no run looks like training
    with pytest.raises(JobError, match=r"no training run .* runs found: finetune, preprocess"):
        backend.job_metrics(_job(fake))


def test_tracking_uri_becomes_the_https_form() -> None:
    from harness.backends.azure.metrics import rest_tracking_uri
    from harness.errors import JobError

    uri = "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w"
    assert rest_tracking_uri(uri) == "https" + uri.removeprefix("azureml")
    with pytest.raises(JobError, match="not azureml:// or https://"):
        rest_tracking_uri("file:///tmp/mlruns")


def test_parameters_the_component_does_not_declare_are_rejected(env: Any, tmp_path: Any
                                                                ) -> None:
    from harness.backends.base import Compute
    from harness.errors import ParameterError

    fake, backend = env
    card = backend.get_foundation_model("Phi-3-mini-4k-instruct", "15")
    compute = Compute("gpu", "Standard_NC24ads_A100_v4", 1, True)
    with pytest.raises(ParameterError, match="learning_rate_min"):
        backend.submit_finetune(card, compute, prepared_data(tmp_path),
                                {"learning_rate_min": 5e-7}, "display", {})
    assert not fake.calls("job", "PUT")


def test_missing_training_split_is_a_data_error(env: Any, tmp_path: Any) -> None:
    import dataclasses

    from harness.backends.base import Compute
    from harness.errors import DataError

    _, backend = env
    card = backend.get_foundation_model("Phi-3-mini-4k-instruct", "15")
    data = prepared_data(tmp_path)
    data = dataclasses.replace(data, files={"train_sft": data.files["train_sft"]})
    with pytest.raises(DataError, match="lacks test_sft"):
        backend.submit_finetune(card, Compute("gpu", "x", 1), data, {}, "display", {})
