"""Jobs on ARM (submit, get, cancel) and their run tree in RunHistory (children, details).

Shapes: rest-api-specs stable/2024-04-01 ``Job/PipelineJob/createOrUpdate.json`` and
``get.json``; job statuses from the REST ``JobStatus`` enum, which says a NotResponding run
"can go from NotResponding to any of the previous states" (``Unknown`` exists too). RunHistory's
``Run`` and ``RunDetails`` as azure-ai-ml's ``_restclient/runhistory`` models read them. The
pipeline's one node runs ``chat_completion_pipeline``, itself a pipeline component: its steps
(azureml-assets ``pipeline_components/chat_completion/spec.yaml`` 0.0.82 ``jobs``) are runs one
level below the node, so a step's real error sits under the root's direct child.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.lro import Operation, Operations
from tests.support.azure_fake.wire import (
    NAME,
    Call,
    Reply,
    Route,
    Scope,
    error_reply,
    json_reply,
    route,
)

STEPS = (
    "ft_nlp_common_validation",
    "chat_completion_model_import",
    "chat_completion_datapreprocess",
    "chat_completion_finetune",
    "ft_nlp_model_converter",
)
FINETUNE_STEP = "chat_completion_finetune"
NODE = "chat_completion_pipeline"
# A NotResponding and an Unknown on the way to Completed: the harness must keep waiting.
WALK = [
    "NotStarted",
    "Queued",
    "Running",
    "NotResponding",
    "Unknown",
    "Running",
    "Finalizing",
    "Completed",
]
# A core-quota failure at run time (MicrosoftLearning/mslearn-dp100#35)
CORE_QUOTA = (
    "UserError",
    "Job submission to AzureML Compute encountered an Exception with "
    "status code JobNodeCountExceedsCoreQuota, The specified subscription has a "
    "Standard NCADSA100v4 Family vCPU quota of 0 and is less than the requested job "
    "node count of 1 which maps to 24 vCPUs.",
)


@dataclass
class Jobs:
    scope: Scope
    ops: Operations
    statuses: list[str] = field(default_factory=lambda: list(WALK))  # per GET; last repeats
    duration_s: float | None = None  # when set: Running until it has passed, then Completed
    failed_step: str = FINETUNE_STEP
    error: tuple[str, str] = ("UserError", "Execution failed: CUDA out of memory")
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    submitted_at: dict[str, float] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)

    def routes(self) -> list[Route]:
        ws, host = self.scope.ws, self.scope.region_host
        hist = re.escape(f"{host}/history/v1.0{self.scope.ws_path}")
        return [
            route("PUT", "job", f"{ws}/jobs/{NAME}", self._put),
            route("GET", "job", f"{ws}/jobs/{NAME}", self._get),
            route("POST", "job.cancel", f"{ws}/jobs/{NAME}/cancel", self._cancel),
            route("GET", "discovery", re.escape(f"{host}/discovery"), self._discovery),
            route("GET", "history.children", f"{hist}/runs/{NAME}/children", self._children),
            route("GET", "history.details", f"{hist}/runs/{NAME}/details", self._details),
        ]

    def studio_url(self, name: str) -> str:
        return f"https://ml.azure.com/runs/{name}?wsid={self.scope.ws_path}"

    def add_job(self, name: str) -> str:
        """A submitted pipeline job (as the PUT stores it), without building a pipeline."""
        self._store(
            name,
            {
                "properties": {
                    "jobType": "Pipeline",
                    "experimentName": self.scope.experiment,
                    "displayName": name,
                    "jobs": {},
                    "inputs": {},
                    "outputs": {},
                    "settings": {},
                }
            },
        )
        return self.studio_url(name)

    def _store(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body["properties"]["status"] = "NotStarted"
        body["properties"]["services"] = {
            "Studio": {"jobServiceType": "Studio", "endpoint": self.studio_url(name)}
        }
        body.update(
            {
                "id": f"{self.scope.ws_path}/jobs/{name}",
                "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            }
        )
        self.jobs[name], self.polls[name] = body, 0
        self.submitted_at[name] = time.monotonic()
        return body

    def _put(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(201, self._store(m.group(1), call.body))

    def status(self, name: str) -> str:
        """The job's status now (a GET moves the scripted walk one step)."""
        if name in self.cancelled:
            return "Canceled"
        if self.duration_s is not None:
            done = time.monotonic() - self.submitted_at[name] >= self.duration_s
            return "Completed" if done else "Running"
        index = self.polls[name]
        self.polls[name] = index + 1
        return self.statuses[min(index, len(self.statuses) - 1)]

    def _get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.jobs.get(m.group(1))
        if body is None:
            return error_reply(404, "UserError", f"job {m.group(1)} not found")
        body["properties"]["status"] = self.status(m.group(1))
        return json_reply(200, body)

    def _cancel(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        if name not in self.jobs:
            return error_reply(404, "UserError", f"job {name} not found")
        self.cancelled.add(name)
        return (
            202,
            self.ops.accept(
                Operation("cancel", lambda: ("Succeeded", "")), location=True, async_header=False
            ),
            "",
        )

    def _discovery(self, call: Call, m: re.Match[str]) -> Reply:
        services = (
            "api",
            "catalog",
            "experimentation",
            "gallery",
            "history",
            "hyperdrive",
            "labeling",
            "modelmanagement",
            "pipelines",
        )
        host = self.scope.region_host
        return json_reply(200, {**{s: host for s in services}, "studio": "https://ml.azure.com"})

    # -- the run tree -------------------------------------------------------------------------

    def training_run_id(self, job: str) -> str:
        """The finetune step's run: the one whose MLflow run logs the Trainer's metrics."""
        return f"{job}-{NODE}-{FINETUNE_STEP}"

    def _root_status(self, job: str) -> str:
        status = str(self.jobs[job]["properties"]["status"])
        return status if status in {"Completed", "Failed", "Canceled"} else "Running"

    def _step_status(self, job: str, step: str) -> str:
        root = self._root_status(job)
        if root in ("Completed", "Running"):
            return root
        failed_at = STEPS.index(self.failed_step)
        if STEPS.index(step) < failed_at:
            return "Completed"
        if root == "Failed":
            return "Failed" if step == self.failed_step else "Canceled"
        return "Canceled"

    def _run(self, run_id: str, name: str, status: str, parent: str, root: str) -> dict[str, Any]:
        return {
            "runId": run_id,
            "displayName": name,
            "status": status,
            "parentRunId": parent,
            "rootRunId": root,
            "experimentId": "exp-1",
            "runType": "azureml.StepRun",
        }

    def _children(self, call: Call, m: re.Match[str]) -> Reply:
        run = m.group(1)
        job = next((j for j in self.jobs if run == j or run.startswith(f"{j}-")), None)
        if job is None:
            return error_reply(404, "UserError", f"run {run} not found")
        node = f"{job}-{NODE}"
        if run == job:
            runs = [self._run(node, NODE, self._root_status(job), job, job)]
        elif run == node:
            runs = [
                self._run(f"{node}-{s}", s, self._step_status(job, s), node, job) for s in STEPS
            ]
        else:
            runs = []
        return json_reply(200, {"value": runs})

    def _details(self, call: Call, m: re.Match[str]) -> Reply:
        run = m.group(1)
        job = next((j for j in self.jobs if run == j or run.startswith(f"{j}-")), None)
        if job is None:
            return error_reply(404, "UserError", f"run {run} not found")
        step = run.rsplit("-", 1)[-1]
        status = self._step_status(job, step) if step in STEPS else self._root_status(job)
        body: dict[str, Any] = {"runId": run, "status": status}
        if status == "Failed":
            code, message = (
                self.error
                if step in STEPS
                else (
                    "UserError",
                    "Pipeline has failed child jobs. For more details and logs, "
                    "please go to the job detail page and check the child jobs.",
                )
            )
            body["error"] = {"error": {"code": code, "message": message}}
        return json_reply(200, body)
