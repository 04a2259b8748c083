"""FineTuning jobs on ARM at api-version 2024-10-01-preview, and the model a finished one registers.

No public recording of this job type exists. Shapes from the SDK and the samples:
- the PUT body is what azure-ai-ml 1.35.2 sends (``CustomModelFineTuningJob._to_rest_object``:
  ``jobType: FineTuning``, ``fineTuningDetails`` with ``taskType``, ``modelProvider: Custom``,
  ``trainingData`` / ``validationData`` as ``uri_file`` inputs, ``hyperParameters`` as a string
  map, ``resources.instanceTypes`` on managed compute, none serverless, and the
  ``registered_model`` output as an ``mlflow_model`` with ``assetName``); the SDK sends it, and
  reads it back, at this api-version only (``operations/_job_operations.py``
  ``_create_or_update_with_different_version_api`` and ``_get_job``);
- statuses are the pipeline's (``azure_fake.jobs``: the same REST ``JobStatus`` enum);
- a Completed job has registered version 1 of ``assetName`` with the job as its ``jobName`` (the
  notebooks then read ``models.get(name=outputs["registered_model"].name, version="1")``:
  azureml-examples ``sdk/python/jobs/finetuning/standalone/model-as-a-platform/chat-completion/
  chat_completion_with_model_as_platform.ipynb``); a name already taken gets the next version;
- ``job_type_removed``: the SDK notes ``JobType.FINE_TUNING`` is removed from the 2025-12-01
  API; the preview API then answering 400 ``UserError`` for the type is authored, not recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.jobs import Jobs
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
from tests.support.azure_fake.workspace import Workspace

API_VERSION = "2024-10-01-preview"
UNKNOWN_TYPE = "The field JobType has an invalid value: 'FineTuning' is not a known job type."


@dataclass
class FineTuning:
    scope: Scope
    jobs: Jobs
    workspace: Workspace
    job_type_removed: bool = False
    registered: dict[str, tuple[str, str]] = field(default_factory=dict)  # job -> model, version

    def routes(self) -> list[Route]:
        preview = r"\?(?:[^#]*&)?api-version=" + re.escape(API_VERSION) + r"(?:&[^#]*)?"
        job = f"{self.scope.ws}/jobs/{NAME}{preview}"
        return [
            route("PUT", "finetuning.job", job, self._put),
            route("GET", "finetuning.job", job, self._get),
        ]

    def is_finetuning(self, name: str) -> bool:
        body = self.jobs.jobs.get(name)
        return body is not None and body["properties"].get("jobType") == "FineTuning"

    def _put(self, call: Call, m: re.Match[str]) -> Reply:
        if self.job_type_removed:
            return error_reply(400, "UserError", UNKNOWN_TYPE)
        problem = _problem(call.body)
        if problem:
            return error_reply(400, "UserError", problem)
        return json_reply(201, self.jobs.store(m.group(1), call.body))

    def _get(self, call: Call, m: re.Match[str]) -> Reply:
        reply, name = self.jobs.get(call, m), m.group(1)
        if reply[0] == 200 and self.is_finetuning(name) and name not in self.registered:
            completed = self.jobs.jobs[name]["properties"]["status"] == "Completed"
            if completed:
                self._register(name)
        return reply

    def _register(self, job: str) -> None:
        output = self.jobs.jobs[job]["properties"]["outputs"]["registered_model"]
        model = str(output["assetName"])
        taken = [int(v) for n, v in self.workspace.models if n == model and v.isdigit()]
        version = str(max(taken, default=0) + 1)
        props = {"modelUri": f"azureml://jobs/{job}/outputs/registered_model", "tags": {}}
        self.workspace.models[(model, version)] = self.workspace.model_body(model, version, props)
        self.registered[job] = (model, version)


def _problem(body: Any) -> str:
    """What the service would refuse in a FineTuning job body, or ''."""
    props = body.get("properties", {}) if isinstance(body, dict) else {}
    details = props.get("fineTuningDetails") or {}
    if props.get("jobType") != "FineTuning":
        return f"jobType {props.get('jobType')!r} is not served at {API_VERSION} by this fake"
    missing = [k for k in ("model", "trainingData", "validationData") if not details.get(k)]
    if missing:
        return f"fineTuningDetails lacks {', '.join(missing)}"
    if details.get("taskType") != "chatCompletion" or details.get("modelProvider") != "Custom":
        return "fineTuningDetails must be a Custom chatCompletion task"
    params = details.get("hyperParameters") or {}
    if not all(isinstance(value, str) for value in params.values()):
        return "hyperParameters must map names to strings"
    if "registered_model" not in (props.get("outputs") or {}):
        return "outputs lacks registered_model"
    return ""
