"""Training metrics into the job's MLflow run, one call per logging step.

Names are the Hugging Face Trainer's (``loss``, ``eval_loss``, ``learning_rate``, ``epoch``,
``train_loss``, ...) plus TRL's (``num_tokens``, ``mean_token_accuracy``, ``entropy``), the names
Azure's fine-tune step logs, so the same checks read both. Only rank 0 logs; TRL gathers its
token counts and the Trainer its evaluation loss over every rank first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from harness.backends.local.job_files import TOTAL_STEPS

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


class MetricsCallback(TrainerCallback):
    """Sends every numeric value the trainer logs to ``MetricsLog`` (rank 0 only), and times
    the evaluations that run during training so throughput can leave them out."""

    def __init__(self, log: MetricsLog | None, marks: dict[str, float] | None = None) -> None:
        self.log = log
        self.training = False
        self.eval_seconds = 0.0
        self.marks = {} if marks is None else marks  # start-up moments (benchmarks/local_e2e.py)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.training, self.eval_seconds = True, 0.0
        if self.log is not None and state.is_world_process_zero and state.max_steps:
            self.log.params({TOTAL_STEPS: state.max_steps})  # the live log's "step N/total"
        self.marks.setdefault("train_begin", time.time())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.marks.setdefault("first_step", time.time())

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.training = False

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.training:
            self.eval_seconds += float(kwargs.get("metrics", {}).get("eval_runtime", 0.0))

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        logs = kwargs.get("logs") or {}
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        if self.log is not None and state.is_world_process_zero and values:
            self.log.log(state.global_step, values)
