"""Training metrics of a local job, read back from its MLflow run as per-key histories.

The job logs Hugging Face Trainer names (``loss``, ``eval_loss``, ...), the names Azure's
fine-tune step logs, so the same checks read both backends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from harness.backends.base import TrainingMetrics


from harness.backends.local.job_files import TOTAL_STEPS

log = logging.getLogger("harness")
WATCHED = ("loss", "eval_loss")


class MetricsWatch:
    """Says each new point of the watched metrics while the job runs (live progress).

    The store is asked at most every ``every_s`` (the job's wait polls far more often) and
    not before: a job over within seconds costs no query at all."""

    def __init__(
        self, client: Callable[[], MlflowClient], run_id: str, every_s: float = 2.0
    ) -> None:
        self.client, self.run_id, self.every_s = client, run_id, every_s
        self.said: dict[str, int] = dict.fromkeys(WATCHED, -1)
        self.asked_at = time.monotonic()
        self.total: str | None = None

    def say(self) -> None:
        if time.monotonic() - self.asked_at < self.every_s:
            return
        self.asked_at = time.monotonic()
        total = self._total()
        for key in WATCHED:
            for point in sorted(
                self.client().get_metric_history(self.run_id, key), key=lambda m: m.step
            ):
                if point.step > self.said[key]:
                    step = f"{point.step}/{total}" if total else str(point.step)
                    log.info("job %s step %s: %s %.4f", self.run_id, step, key, point.value)
                    self.said[key] = point.step

    def _total(self) -> str | None:
        """The steps the training will take, once the job has said (``total_steps``)."""
        if self.total is None:
            self.total = self.client().get_run(self.run_id).data.params.get(TOTAL_STEPS)
        return self.total


def read_metrics(client: MlflowClient, run_id: str) -> TrainingMetrics:
    """Every metric of a run as its history of values in step order, with the steps."""
    from harness.backends.base import TrainingMetrics

    run = client.get_run(run_id)
    series: dict[str, list[float]] = {}
    steps: dict[str, list[int]] = {}
    for key in sorted(run.data.metrics):
        history = sorted(
            client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)
        )
        series[key], steps[key] = [m.value for m in history], [m.step for m in history]
    return TrainingMetrics(series=series, steps=steps)
