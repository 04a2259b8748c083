"""The fine-tune job on Azure, in the service's own states: only Completed passes,
NotResponding and Unknown are waited on (NotResponding up to a grace period), the deadline
cancels, failures name the step inside the nested pipeline, quota says quota, metrics via
MLflow v2.0, and every wait logs its state changes with the studio URL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness.backends.base import JobRun
from tests.support.azure_fake import AzureRig, azure_config, fake_azure, prepared_data


def _job(rig: AzureRig, name: str = "brave_job_1") -> JobRun:
    url = rig.fake.jobs.add_job(name)
    return JobRun(
        name=name,
        display_name="display",
        status="NotStarted",
        url=url,
        experiment=rig.fake.scope.experiment,
    )


def test_a_failed_step_inside_the_nested_pipeline_is_named(azure: AzureRig) -> None:
    from harness.errors import JobError

    azure.fake.jobs.statuses = ["Running", "Failed"]
    with pytest.raises(JobError) as failure:
        azure.backend.wait_for_job(_job(azure), timeout_s=5)
    message = str(failure.value)
    assert "ended Failed, expected Completed" in message
    assert (
        "step chat_completion_pipeline/chat_completion_finetune Failed: UserError: "
        "Execution failed: CUDA out of memory"
    ) in message
    assert "https://ml.azure.com/runs/brave_job_1" in message
    assert "quota" not in message


def test_a_core_quota_failure_at_run_time_says_quota(azure: AzureRig) -> None:
    from harness.errors import JobError
    from tests.support.azure_fake.jobs import CORE_QUOTA

    azure.fake.jobs.statuses = ["Queued", "Failed"]
    azure.fake.jobs.failed_step, azure.fake.jobs.error = "chat_completion_model_import", CORE_QUOTA
    with pytest.raises(JobError) as failure:
        azure.backend.wait_for_job(_job(azure), timeout_s=5)
    message = str(failure.value)
    assert "chat_completion_model_import Failed" in message
    assert "JobNodeCountExceedsCoreQuota" in message
    assert "quota failure at run time" in message and "--compute-sku" in message


def test_a_canceled_job_fails(azure: AzureRig) -> None:
    """jobs.stream() returns normally on Canceled: the harness must not."""
    from harness.errors import JobError

    azure.fake.jobs.statuses = ["Queued", "Canceled"]
    with pytest.raises(JobError, match="ended Canceled, expected Completed"):
        azure.backend.wait_for_job(_job(azure), timeout_s=5)
    assert not azure.fake.calls("job.cancel")


def test_not_responding_and_unknown_are_waited_through(azure: AzureRig) -> None:
    """azure-ai-ml calls NotResponding terminal; the service does not: the job went on."""
    done = azure.backend.wait_for_job(_job(azure), timeout_s=5)
    assert done.status == "Completed"
    assert not azure.fake.calls("job.cancel")


def test_not_responding_past_the_grace_period_fails_with_that_reason() -> None:
    from harness.errors import JobError

    with fake_azure(azure_config(job_not_responding_grace_s="0.05")) as rig:
        rig.fake.jobs.statuses = ["Running", "NotResponding"]
        with pytest.raises(JobError) as failure:
            rig.backend.wait_for_job(_job(rig), timeout_s=5)
        assert rig.fake.calls("job.cancel")
    message = str(failure.value)
    assert "has been NotResponding for 0s, longer than the grace period of 0s" in message
    assert "it was cancelled" in message and "--job-not-responding-grace" in message


@pytest.mark.parametrize("status", ["NotResponding", "Paused", "Unknown"])
def test_states_that_are_not_final_are_waited_on_until_the_deadline(
    azure: AzureRig, status: str
) -> None:
    from harness.errors import JobError

    azure.fake.jobs.statuses = [status]
    with pytest.raises(JobError, match=f"did not finish within 0s \\(last status {status}\\)"):
        azure.backend.wait_for_job(_job(azure), timeout_s=0.05)
    assert azure.fake.calls("job.cancel")


def test_job_is_cancelled_at_the_deadline(azure: AzureRig) -> None:
    from harness.errors import JobError

    azure.fake.jobs.statuses = ["Running"]
    with pytest.raises(
        JobError,
        match=r"within 0s \(last status Running\); it was cancelled "
        r"at the deadline; raise --job-timeout",
    ):
        azure.backend.wait_for_job(_job(azure), timeout_s=0.02)
    (cancel,) = azure.fake.calls("job.cancel")
    assert cancel.path.endswith("/jobs/brave_job_1/cancel")
    assert azure.fake.calls("operation.result"), "cancel is followed through its Location"


@pytest.mark.parametrize(
    "status, cancelled",
    [
        ("Completed", False),
        ("Failed", False),
        ("Canceled", False),
        ("NotResponding", True),
        ("Unknown", True),
        ("Paused", True),
        ("Running", True),
    ],
)
def test_teardown_cancels_every_job_that_has_not_ended(
    azure: AzureRig, status: str, cancelled: bool
) -> None:
    azure.fake.jobs.statuses = [status]
    azure.backend.delete_job(_job(azure).name, 5)
    assert bool(azure.fake.calls("job.cancel")) is cancelled


def test_every_state_change_is_logged_with_the_studio_url(
    azure: AzureRig, caplog: pytest.LogCaptureFixture
) -> None:
    azure.fake.jobs.statuses = ["Queued", "Queued", "Running", "NotResponding", "Completed"]
    with caplog.at_level(logging.INFO, logger="harness"):
        azure.backend.wait_for_job(_job(azure), timeout_s=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "harness"]
    states = [line.split()[3].rstrip(",") for line in lines]
    assert states == ["Queued", "Running", "NotResponding", "Completed"]
    assert all("of 5s deadline; https://ml.azure.com/runs/brave_job_1" in line for line in lines)


def test_a_cluster_that_takes_long_logs_a_heartbeat_between_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from harness.waiting import Deadline, Heartbeat, wait_poller

    class SlowPoller:
        polls = 0

        def wait(self, timeout: float | None = None) -> None:
            self.polls += 1

        def done(self) -> bool:
            return self.polls >= 3

        def status(self) -> str:
            return "Succeeded" if self.done() else "InProgress"

        def result(self, timeout: float | None = None) -> None:
            return None

    beat = Heartbeat("compute cluster gpu creation", Deadline(1800), every_s=0.0)
    with caplog.at_level(logging.INFO, logger="harness"):
        assert wait_poller(beat, SlowPoller())
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(",")[0] for line in lines] == [
        "compute cluster gpu creation InProgress",
        "compute cluster gpu creation InProgress",
        "compute cluster gpu creation Succeeded",
    ]
    assert all("of 30m deadline" in line for line in lines)


def test_metrics_are_read_at_mlflow_v2(azure: AzureRig) -> None:
    metrics = azure.backend.job_metrics(_job(azure))
    assert metrics.values("loss") == [2.4, 2.1, 1.9, 1.7]
    assert all("/mlflow/v2.0/" in c.path for c in azure.fake.requests if "/mlflow/" in c.path)


def test_a_job_without_a_training_run_has_no_metrics(azure: AzureRig) -> None:
    from harness.errors import JobError

    azure.fake.mlflow.metrics = {"loss": [1.0]}  # no "epoch": no run looks like training
    with pytest.raises(JobError, match=r"no training run .* runs found: .*chat_completion_"):
        azure.backend.job_metrics(_job(azure))


def test_the_tracking_uri_becomes_https_at_v2() -> None:
    from harness.backends.azure.metrics import rest_tracking_uri
    from harness.errors import JobError

    ws = (
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w"
    )
    uri = f"azureml://eastus.api.azureml.ms/mlflow/v1.0{ws}"
    assert rest_tracking_uri(uri) == f"https://eastus.api.azureml.ms/mlflow/v2.0{ws}"
    assert rest_tracking_uri(uri.replace("v1.0", "v2.0")) == rest_tracking_uri(uri)
    with pytest.raises(JobError, match="not azureml:// or https://"):
        rest_tracking_uri("file:///tmp/mlruns")


def test_parameters_the_component_does_not_declare_are_rejected(
    azure: AzureRig, tmp_path: Path
) -> None:
    from harness.backends.base import Compute
    from harness.errors import ParameterError

    card = azure.backend.get_foundation_model("Phi-4", "8")
    compute = Compute("gpu", "Standard_NC24ads_A100_v4", 1, True)
    with pytest.raises(ParameterError, match="learning_rate_min"):
        azure.backend.submit_finetune(
            card, compute, prepared_data(tmp_path), {"learning_rate_min": 5e-7}, "display", {}
        )
    assert not azure.fake.calls("job", "PUT")


def test_missing_training_split_is_a_data_error(azure: AzureRig, tmp_path: Path) -> None:
    import dataclasses

    from harness.backends.base import Compute
    from harness.errors import DataError

    card = azure.backend.get_foundation_model("Phi-4", "8")
    data = prepared_data(tmp_path)
    data = dataclasses.replace(data, files={"train_sft": data.files["train_sft"]})
    with pytest.raises(DataError, match="lacks test_sft"):
        azure.backend.submit_finetune(card, Compute("gpu", "x", 1), data, {}, "display", {})


def _step_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " step " in r.getMessage()]


def test_the_wait_says_each_training_step_of_max_steps(
    azure: AzureRig, caplog: pytest.LogCaptureFixture
) -> None:
    """The trainer logged max_steps=4 (its TrainingArguments, as run parameters): each new
    loss point is said once, as step N/4, while the job still runs."""
    azure.fake.mlflow.params["max_steps"] = "4"
    azure.fake.mlflow.growing = True  # one more point per poll of the job
    azure.backend.progress_interval_s = 0.0
    with caplog.at_level(logging.INFO, logger="harness"):
        azure.backend.wait_for_job(_job(azure), timeout_s=5)
    said = _step_lines(caplog)
    assert [line for line in said if ": loss" in line] == [
        "job brave_job_1 step 0/4: loss 2.4000",
        "job brave_job_1 step 1/4: loss 2.1000",
        "job brave_job_1 step 2/4: loss 1.9000",
        "job brave_job_1 step 3/4: loss 1.7000",
    ]
    assert [line for line in said if ": eval_loss" in line] == [
        "job brave_job_1 step 0/4: eval_loss 1.9000",
        "job brave_job_1 step 1/4: eval_loss 1.6000",
    ]
    assert len(said) == 6
    lines = [r.getMessage() for r in caplog.records]
    running = [n for n, line in enumerate(lines) if "brave_job_1 Running" in line]
    assert lines.index("job brave_job_1 step 0/4: loss 2.4000") < running[-1]


def test_without_max_steps_the_steps_have_no_total(
    azure: AzureRig, caplog: pytest.LogCaptureFixture
) -> None:
    """max_steps -1 (the default): the trainer counts its steps from the epochs and the data,
    which the run does not say; no total is made up."""
    azure.backend.progress_interval_s = 0.0
    with caplog.at_level(logging.INFO, logger="harness"):
        azure.backend.wait_for_job(_job(azure), timeout_s=5)
    said = _step_lines(caplog)
    assert "job brave_job_1 step 3: loss 1.7000" in said
    assert "job brave_job_1 step 1: eval_loss 1.6000" in said
    assert len(said) == 6 and not [line for line in said if "/" in line.split(":")[0]]


def test_a_job_over_before_the_interval_costs_no_metrics_query(azure: AzureRig) -> None:
    azure.backend.wait_for_job(_job(azure), timeout_s=5)  # the 120 s interval never passed
    assert not azure.fake.calls("mlflow.search") and not azure.fake.calls("mlflow.history")


def test_progress_that_cannot_be_read_is_said_once_and_the_wait_goes_on(
    azure: AzureRig, caplog: pytest.LogCaptureFixture
) -> None:
    azure.fake.router.inject("mlflow.history", 403, times=100)
    azure.backend.progress_interval_s = 0.0
    with caplog.at_level(logging.INFO, logger="harness"):
        done = azure.backend.wait_for_job(_job(azure), timeout_s=5)
    assert done.status == "Completed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "training progress cannot be read" in warnings[0]
    assert len(azure.fake.calls("mlflow.history")) == 1
