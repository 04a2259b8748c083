"""An in-memory Backend for testing the plugin's fixture chain with pytester.

It records every create/delete as a JSON line in ``HARNESS_FAKE_EVENTS`` so a test can count
them across processes (xdist workers, a signalled subprocess). ``HARNESS_FAKE_FAIL=<step>``
makes that step raise after its resource exists (a half-created resource; `invoke_timeout`:
no scoring request is answered);
``HARNESS_FAKE_SLEEP=<step>:<seconds>[,<step>:<seconds>]`` makes steps slow, to signal the
run meanwhile (a slow deletion: a signal during teardown);
``HARNESS_FAKE_DIES=<step>`` makes ``dead_parts`` report the job dead once any process sleeps
in that step (the local backend's job killed while its worker waits for it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import finetune_params
from harness.backends.base import (
    REQUEST_TIMEOUT_MS,
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    Likelihood,
    LikelihoodComparison,
    OwnedResource,
    RegisteredModel,
    RegistryVersion,
    ScoringReply,
    Secret,
    TrainingMetrics,
    VmSize,
    finetuned_model_name,
)
from harness.data import PreparedData
from harness.errors import HarnessError, ScoringError
from harness.model_card import ModelCard, model_card

TAGS = {
    "finetune_compute_allow_list": "['Fake_GPU_1']",
    "inference_compute_allow_list": "['Fake_Infer']",
    "model_specific_defaults": '{"learning_rate": 0.001, "learning_rate_min": 1e-05}',
    "task": "chat-completion",
}


class FakeBackend:
    name = "fake"

    def __init__(self, events: Path | None = None) -> None:
        self.events = events or Path(os.environ["HARNESS_FAKE_EVENTS"])
        self.fail = set(os.environ.get("HARNESS_FAKE_FAIL", "").split(",")) - {""}
        sleeps = os.environ.get("HARNESS_FAKE_SLEEP", "").split(",")
        self.sleep = {
            step: float(seconds)
            for step, _, seconds in map(lambda item: item.partition(":"), sleeps)
            if step
        }

    def _event(self, event: str, kind: str, name: str, timeout_s: float | None = None) -> None:
        line = json.dumps(
            {
                "event": event,
                "kind": kind,
                "name": name,
                "pid": os.getpid(),
                "delete_timeout_s": timeout_s,
                "t": round(time.time(), 2),
            }
        )
        with self.events.open("a") as out:
            out.write(line + "\n")

    def _step(self, step: str, undo: tuple[str, str] | None = None) -> None:
        """Sleep or fail as asked; ``undo`` is what a real backend deletes itself when its
        own creating call fails half-way (the plugin only learns of what a call returns)."""
        if step in self.sleep:
            self._event("sleeping", step, str(os.getpid()))
            time.sleep(self.sleep[step])
        if step in self.fail:
            if undo:
                self._event("delete", *undo)
            raise HarnessError(f"fake failure in {step}")

    def get_foundation_model(self, name: str, version_or_label: str) -> ModelCard:
        self._step("get_foundation_model")
        return model_card(name, "1", f"fake://models/{name}/versions/1", TAGS)

    def list_model_versions(self, name: str) -> Sequence[RegistryVersion]:
        return [RegistryVersion("1")]

    def list_vm_sizes(self) -> Sequence[VmSize]:
        return [VmSize("Fake_GPU_1", gpus=1, vcpus=8), VmSize("Fake_Infer", gpus=1, vcpus=8)]

    def component_inputs(self) -> Mapping[str, Mapping[str, Any]]:
        return finetune_params.load_component_inputs()

    def ensure_compute(
        self, card: ModelCard, name: str, sku: str | None, tags: Mapping[str, str]
    ) -> Compute:
        self._event("create", "compute", name)
        compute = Compute(name, sku or "Fake_GPU_1", 1, created_by_harness=True)
        self._step("ensure_compute", undo=("compute", name))
        return compute

    def submit_finetune(
        self,
        card: ModelCard,
        compute: Compute,
        data: PreparedData,
        parameters: Mapping[str, Any],
        display_name: str,
        tags: Mapping[str, str],
    ) -> JobRun:
        name = f"job-{display_name}"
        self._event("create", "job", name)
        self._step("submit_finetune", undo=("job", name))
        return JobRun(name, display_name, "Running", "fake://job")

    def wait_for_job(self, job: JobRun, timeout_s: float) -> JobRun:
        self._step("wait_for_job")
        return self.get_job(job.name)

    def get_job(self, name: str) -> JobRun:
        return JobRun(name, name.removeprefix("job-"), "Completed", "fake://job")

    def delete_job(self, name: str, timeout_s: float) -> None:
        self._event("delete", "job", name, timeout_s)

    def job_metrics(self, job: JobRun) -> TrainingMetrics:
        after = float(os.environ.get("HARNESS_FAKE_EVAL_LOSS", "1.2"))
        return TrainingMetrics(
            {"loss": [2.0, 1.5, 1.0], "eval_loss": [2.1, after]},
            {"loss": [10, 20, 30], "eval_loss": [0, 30]},
        )

    def register_model(
        self, card: ModelCard, job: JobRun, tags: Mapping[str, str]
    ) -> RegisteredModel:
        name = finetuned_model_name(card.name)
        self._event("create", "model", name)
        self._step("register_model", undo=("model", name))
        return RegisteredModel(name, "1", f"fake://{name}/1", job.name, dict(tags))

    def begin_create_endpoint(self, name: str, tags: Mapping[str, str]) -> Endpoint:
        self._event("create", "endpoint", name)
        self._step("begin_create_endpoint")
        return self.get_endpoint(name)

    def wait_for_endpoint(self, name: str, timeout_s: float) -> Endpoint:
        self._step("wait_for_endpoint")
        return self.get_endpoint(name)

    def get_endpoint(self, name: str) -> Endpoint:
        return Endpoint(name, f"http://127.0.0.1/{name}/score", "key", "Succeeded", {})

    def deploy(
        self,
        endpoint: Endpoint,
        model: RegisteredModel,
        name: str,
        instance_type: str,
        tags: Mapping[str, str],
        timeout_s: float,
    ) -> Deployment:
        self._event("create", "deployment", name)
        self._step("deploy")
        return Deployment(
            name, endpoint.name, model.id, instance_type, "Succeeded", 100, REQUEST_TIMEOUT_MS
        )

    def invoke(
        self, endpoint: Endpoint, deployment: Deployment, request: Mapping[str, Any]
    ) -> ScoringReply:
        self._step("invoke")
        if "invoke_timeout" in self.fail:  # what --scoring-timeout 0.01 does to a real request
            raise ScoringError("no answer within the scoring timeout of 0.01 s")
        return ScoringReply(200, json.dumps({"output": "Paris is the capital."}), 0.01)

    def endpoint_key(self, endpoint: Endpoint) -> Secret:
        return Secret("fake-key")

    def invoke_raw(
        self, endpoint: Endpoint, request: Mapping[str, Any], key: Secret | str | None
    ) -> ScoringReply:
        if Secret.wrap(key) != Secret("fake-key"):
            return ScoringReply(401, "{}", 0.01)
        return ScoringReply(200, json.dumps({"output": "Paris."}), 0.01)

    def reference_likelihood(
        self,
        foundation: ModelCard,
        finetuned: RegisteredModel,
        conversations: Sequence[Sequence[Mapping[str, str]]],
    ) -> LikelihoodComparison:
        tokens = sum(len(m["content"]) for c in conversations for m in c)
        return LikelihoodComparison(
            Likelihood(-3.0, tokens, len(conversations)),
            Likelihood(-2.5, tokens, len(conversations)),
        )

    def delete_endpoint(self, name: str, timeout_s: float) -> None:
        self._event("delete", "endpoint", name, timeout_s)
        self._step("delete_endpoint")

    def delete_model(self, ref: str, timeout_s: float) -> None:
        self._event("delete", "model", ref.rpartition(":")[0], timeout_s)

    def delete_compute(self, name: str, timeout_s: float) -> None:
        self._event("delete", "compute", name, timeout_s)

    def list_owned_resources(self) -> Sequence[OwnedResource]:
        return []

    def dead_parts(self) -> list[str]:
        """The job, once any process (a worker) sleeps in step ``HARNESS_FAKE_DIES``."""
        step = os.environ.get("HARNESS_FAKE_DIES")
        events = read_events(self.events)
        if step and any(e["event"] == "sleeping" and e["kind"] == step for e in events):
            return [f"fake job died in {step} (exit code -9: killed by SIGKILL); log fake://job"]
        return []

    def close(self, stop_owned: bool) -> None:
        self._event("close", "backend", str(os.getpid()))


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
