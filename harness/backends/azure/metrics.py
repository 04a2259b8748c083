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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from harness.backends.azure.clients import service_message
from harness.errors import JobError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import JobRun, TrainingMetrics

TRAINING_MARKER = "epoch"  # only the finetune step's HF Trainer logs it
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


def _training_run(store: Any, experiment: str, job: JobRun) -> Any:
    from mlflow.entities import ViewType

    found = store.get_experiment_by_name(experiment)
    if found is None:
        raise JobError(f"MLflow experiment {experiment} of job {job.name} not found; see {job.url}")
    runs = list(
        store.search_runs(
            [found.experiment_id], f"tags.mlflow.rootRunId='{job.name}'", ViewType.ALL, MAX_RUNS
        )
    )
    training = [r for r in runs if TRAINING_MARKER in r.data.metrics]
    training.sort(key=lambda r: r.info.run_id == job.name)  # a step run before the root's copy
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
