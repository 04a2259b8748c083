"""The workspace's MLflow tracking service, at ``/mlflow/v2.0`` only.

The workspace reports ``azureml://{region}.api.azureml.ms/mlflow/v1.0/...``; azureml-mlflow
1.62 (``azureml/mlflow/__init__.py``) rewrites it to ``/mlflow/v2.0`` for MLflow 2 and 3
clients, so that is the only path served here: a client still on v1.0 gets no answer. Bodies
are MLflow's REST API 2.0 (mlflow.org/docs/latest/rest-api.html: experiments/get-by-name,
runs/search, metrics/get-history). Only the finetune step's Hugging Face Trainer logs metrics
(and its arguments as parameters); the pipeline root shows a copy of the metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.jobs import STEPS, Jobs
from tests.support.azure_fake.wire import Call, Reply, Route, Scope, json_reply, route


def default_metrics() -> dict[str, list[float]]:
    return {
        "loss": [2.4, 2.1, 1.9, 1.7],
        "learning_rate": [5e-6, 4e-6, 2e-6, 1e-6],
        "grad_norm": [1.2, 1.0, 0.9, 0.8],
        "epoch": [0.25, 0.5, 0.75, 1.0],
        "eval_loss": [1.9, 1.6],
        "train_loss": [1.95],
    }


def default_params() -> dict[str, str]:
    """Two of the run parameters the trainer logs: transformers' ``MLflowCallback.setup``
    (``integrations/integration_utils.py``) logs ``TrainingArguments.to_dict()``, values as
    text, on the run it logs metrics to; ``max_steps`` is -1 unless the job was given one."""
    return {"max_steps": "-1", "num_train_epochs": "1"}


@dataclass
class Mlflow:
    scope: Scope
    jobs: Jobs
    metrics: dict[str, list[float]] = field(default_factory=default_metrics)
    params: dict[str, str] = field(default_factory=default_params)
    growing: bool = False  # a training still logging: one point more per GET of its job

    def _visible(self, job: str, values: list[float]) -> list[float]:
        return values[: self.jobs.polls.get(job, 0)] if self.growing else values

    def routes(self) -> list[Route]:
        mlf = re.escape(f"{self.scope.region_host}/mlflow/v2.0{self.scope.ws_path}/api/2.0/mlflow")
        return [
            route("GET", "mlflow.experiment", f"{mlf}/experiments/get-by-name", self._experiment),
            route("POST", "mlflow.search", f"{mlf}/runs/search", self._search),
            route("GET", "mlflow.history", f"{mlf}/metrics/get-history", self._history),
        ]

    def _experiment(self, call: Call, m: re.Match[str]) -> Reply:
        name = call.query.get("experiment_name", [""])[0]
        if name != self.scope.experiment:
            return json_reply(
                404,
                {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"experiment {name} not found",
                },
            )
        return json_reply(
            200,
            {"experiment": {"experiment_id": "exp-1", "name": name, "lifecycle_stage": "active"}},
        )

    def _metrics_of(self, run_id: str, job: str) -> dict[str, list[float]]:
        return self.metrics if run_id in (job, self.jobs.training_run_id(job)) else {}

    def _runs(self) -> list[dict[str, Any]]:
        runs = []
        for job in self.jobs.jobs:
            ids = [job, *(f"{job}-chat_completion_pipeline-{step}" for step in STEPS)]
            for run_id in ids:
                shown = {k: self._visible(job, v) for k, v in self._metrics_of(run_id, job).items()}
                latest = [
                    {"key": k, "value": v[-1], "timestamp": 0, "step": len(v) - 1}
                    for k, v in shown.items()
                    if v
                ]
                runs.append(
                    {
                        "info": {
                            "run_id": run_id,
                            "experiment_id": "exp-1",
                            "run_name": run_id.rsplit("-", 1)[-1],
                            "status": "FINISHED",
                            "lifecycle_stage": "active",
                        },
                        "data": {
                            "metrics": latest,
                            "params": [
                                {"key": k, "value": v}
                                for k, v in self.params.items()
                                if run_id == self.jobs.training_run_id(job)
                            ],
                            "tags": [{"key": "mlflow.rootRunId", "value": job}],
                        },
                    }
                )
        return runs

    def _search(self, call: Call, m: re.Match[str]) -> Reply:
        found = re.search(r"tags\.mlflow\.rootRunId\s*=\s*'([^']+)'", call.body.get("filter", ""))
        root = found.group(1) if found else None
        runs = [
            r
            for r in self._runs()
            if root is None
            or any(t["value"] == root for t in r["data"]["tags"] if t["key"] == "mlflow.rootRunId")
        ]
        return json_reply(200, {"runs": runs})

    def _history(self, call: Call, m: re.Match[str]) -> Reply:
        run_id, key = call.query["run_id"][0], call.query["metric_key"][0]
        job = next((j for j in self.jobs.jobs if run_id == j or run_id.startswith(f"{j}-")), "")
        values = self._visible(job, self._metrics_of(run_id, job).get(key, []))
        return json_reply(
            200,
            {
                "metrics": [
                    {"key": key, "value": v, "timestamp": 1000 + i, "step": i}
                    for i, v in enumerate(values)
                ]
            },
        )
