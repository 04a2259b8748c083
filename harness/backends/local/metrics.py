"""Training metrics of a local job, read back from its MLflow run as per-key histories.

The job logs Hugging Face Trainer names (``loss``, ``eval_loss``, ...), the names Azure's
fine-tune step logs, so the same checks read both backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def read_series(client: MlflowClient, run_id: str) -> dict[str, list[float]]:
    """Every metric of a run as its history of values in step order."""
    run = client.get_run(run_id)
    series: dict[str, list[float]] = {}
    for key in sorted(run.data.metrics):
        history = sorted(
            client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)
        )
        series[key] = [m.value for m in history]
    return series
