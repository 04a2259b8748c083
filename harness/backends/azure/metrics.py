"""Training metrics of a pipeline job, read through MLflow's REST client.

The workspace reports an ``azureml://{region}.api.azureml.ms/mlflow/v1.0/...`` tracking URI.
The official plugin azureml-mlflow (1.62, ``azureml/mlflow/__init__.py``) rewrites
``/mlflow/v1.0`` to ``/mlflow/v2.0`` for MLflow 2 and 3 clients and talks HTTPS to the same
host; the harness does the same with MLflow's own RestStore (what MlflowClient builds for https
URIs) instead of installing the plugin: azureml-mlflow 1.62 pins ``mlflow-skinny<=3.15.0`` and
``azure-storage-blob<=12.27.1``, below what the lock resolves with azure-ai-ml and the local
backend (3.17.2, 12.31.1), and all the harness needs from it is that path and a bearer token.
MlflowClient would take the token only from the process-wide MLFLOW_TRACKING_TOKEN (global,
leaked to child processes, stale after an hour), so the store gets a credentials callback that
asks the credential for a fresh token on every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from harness.backends.azure.clients import service_message
from harness.errors import JobError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import JobRun, TrainingMetrics

TRAINING_MARKER = "epoch"  # only the finetune step's HF Trainer logs it
WATCHED = ("loss", "eval_loss")  # said while the job runs (TrainingProgress)
MAX_STEPS = "max_steps"  # a TrainingArguments field, logged as a run parameter
log = logging.getLogger("harness")
MAX_RUNS = 1000
V1, V2 = "/mlflow/v1.0/", "/mlflow/v2.0/"


def rest_tracking_uri(uri: str) -> str:
    """``azureml://{region}.api.azureml.ms/mlflow/v1.0/...`` -> ``https://.../mlflow/v2.0/...``:
    the same service, at the path azureml-mlflow uses for MLflow 2 and 3 clients."""
    parts = urlsplit(uri)
    if parts.scheme not in ("azureml", "https") or not parts.netloc:
        raise JobError(
            f"workspace MLflow tracking URI {uri!r} is not azureml:// or https://; "
            "check the workspace in the studio"
        )
    path = parts.path.rstrip("/").replace(V1, V2, 1)
    return urlunsplit(("https", parts.netloc, path, "", ""))


def tracking_uri(workspace: MLClient) -> str:
    from azure.core.exceptions import AzureError

    name = str(workspace.workspace_name)
    try:
        uri = workspace.workspaces.get(name).mlflow_tracking_uri
    except AzureError as exc:
        raise JobError(
            f"cannot read workspace {name} for its MLflow tracking URI: {service_message(exc)}"
        ) from None
    if not uri:
        raise JobError(f"workspace {name} reports no MLflow tracking URI; check it in the studio")
    return rest_tracking_uri(str(uri))


def rest_store(uri: str, token: Callable[[], str]) -> Any:
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.utils.rest_utils import MlflowHostCreds

    def credentials() -> Any:  # called before every request: the token stays fresh
        return MlflowHostCreds(host=uri, token=token())  # type: ignore[no-untyped-call]

    return RestStore(credentials)  # type: ignore[no-untyped-call]


def job_metrics(store: Any, experiment: str, job: JobRun) -> TrainingMetrics:
    """Every metric history of the job's training run (the child run that logged ``epoch``)."""
    from mlflow.exceptions import MlflowException

    from harness.backends.base import TrainingMetrics

    try:
        run = _training_run(store, experiment, job)
        history = {key: _history(store, run.info.run_id, key) for key in sorted(run.data.metrics)}
    except MlflowException as exc:
        raise JobError(
            f"cannot read the MLflow metrics of job {job.name}: {exc.message}; see {job.url}"
        ) from None
    return TrainingMetrics(
        series={key: [v for _, v in points] for key, points in history.items()},
        steps={key: [s for s, _ in points] for key, points in history.items()},
    )


def _job_runs(store: Any, experiment: str, job: JobRun) -> list[Any] | None:
    """Every run under the job's root run, the training run first; None without the
    experiment."""
    from mlflow.entities import ViewType

    found = store.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = list(
        store.search_runs(
            [found.experiment_id], f"tags.mlflow.rootRunId='{job.name}'", ViewType.ALL, MAX_RUNS
        )
    )
    # the training run is the one that logged ``epoch``; a step's run before the root's copy
    return sorted(
        runs, key=lambda r: (TRAINING_MARKER not in r.data.metrics, r.info.run_id == job.name)
    )


def _training_run(store: Any, experiment: str, job: JobRun) -> Any:
    runs = _job_runs(store, experiment, job)
    if runs is None:
        raise JobError(f"MLflow experiment {experiment} of job {job.name} not found; see {job.url}")
    training = [r for r in runs if TRAINING_MARKER in r.data.metrics]
    if not training:
        names = ", ".join(sorted(str(r.info.run_name or r.info.run_id) for r in runs)) or "none"
        raise JobError(
            f"job {job.name} has no training run (a run that logged '{TRAINING_MARKER}') in "
            f"experiment {experiment}; runs found: {names}; the finetune step logged no metrics: "
            f"see {job.url}"
        )
    return training[0]


def _history(store: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    metrics = store.get_metric_history(run_id, key)
    return [
        (int(m.step), float(m.value)) for m in sorted(metrics, key=lambda m: (m.step, m.timestamp))
    ]


class TrainingProgress:
    """Says each new point of the training run's loss while the job runs, as the local backend
    does: ``job NAME step N/TOTAL: loss 1.2345``, or ``step N`` when the run gives no total.

    N is the point's MLflow step, which Hugging Face's ``MLflowCallback.on_log`` sets to the
    trainer's ``global_step``. TOTAL is the run's ``max_steps`` parameter: ``MLflowCallback.setup``
    logs the ``TrainingArguments`` as run parameters (transformers
    ``integrations/integration_utils.py``), and ``max_steps`` bounds the training when it is
    positive (``--finetune-param max_steps=N``); at its default -1 the trainer counts steps from
    the epochs and the data, which the run does not log, so no total is shown. The store is
    asked at most every ``every_s``; a failed read is said once and never fails the wait."""

    def __init__(
        self, open_store: Callable[[], Any], experiment: str, job: JobRun, every_s: float
    ) -> None:
        self.open_store, self.experiment, self.job = open_store, experiment, job
        self.every_s = every_s
        self.said: dict[str, int] = dict.fromkeys(WATCHED, -1)
        self.asked_at, self.asked = time.monotonic(), False
        self.store: Any = None
        self.failed = False

    def say(self, final: bool = False) -> None:
        """Log the points logged since the last time. Not before ``every_s`` has passed: a job
        over within it costs no query (nor does a replayed one); ``final`` flushes a job that
        was watched, whatever the interval."""
        now = time.monotonic()
        due = now - self.asked_at >= self.every_s or (final and self.asked)
        if self.failed or not due:
            return
        # only now: importing MLflow takes seconds (10 s on a loaded machine), spent inside
        # the job's wait; a poll that asks nothing must not pay it
        from azure.core.exceptions import AzureError
        from mlflow.exceptions import MlflowException

        self.asked_at, self.asked = now, True
        try:
            self._say_new_points()
        except (AzureError, MlflowException, JobError) as exc:
            self.failed = True
            log.warning(
                "job %s: its training progress cannot be read (%s); waiting on", self.job.name, exc
            )

    def _say_new_points(self) -> None:
        self.store = self.store or self.open_store()
        runs = _job_runs(self.store, self.experiment, self.job) or []
        training = [r for r in runs if TRAINING_MARKER in r.data.metrics]
        if not training:
            return  # the finetune step has not logged yet
        run = training[0]
        total = _total_steps(run.data.params)
        for key in WATCHED:
            for step, value in _history(self.store, run.info.run_id, key):
                if step > self.said[key]:
                    shown = f"{step}/{total}" if total else str(step)
                    log.info("job %s step %s: %s %.4f", self.job.name, shown, key, value)
                    self.said[key] = step


def _total_steps(params: Mapping[str, str]) -> int | None:
    """``max_steps`` when the run logged a positive one (see ``TrainingProgress``)."""
    try:
        total = int(params.get(MAX_STEPS, ""))
    except ValueError:
        return None
    return total if total > 0 else None
