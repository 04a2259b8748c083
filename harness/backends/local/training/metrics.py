"""Training metrics into the job's MLflow run, one call per logging step.

Names follow the Hugging Face Trainer (``loss``, ``eval_loss``, ``learning_rate``, ``epoch``,
``train_loss``, ...), the names Azure's fine-tune step logs, so the same checks read both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


class MetricsLog:
    """Logs one step's metrics in one MLflow call, and echoes them to the job log.

    Logging is asynchronous (a SQLite write costs milliseconds, a tiny model's step about as
    much); ``flush`` waits for every write, and the job calls it before reporting success.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.pending: list[Any] = []

    def log(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
        self.pending.append(self.client.log_batch(self.run_id, metrics=metrics, synchronous=False))
        print(
            json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()}}),
            flush=True,
        )

    def flush(self) -> None:
        for operation in self.pending:
            if operation is not None:
                operation.wait()
        self.pending.clear()

    def params(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(key, str(value)[:6000]) for key, value in values.items()]
        self.client.log_batch(self.run_id, params=params)
