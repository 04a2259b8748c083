"""Event streams of whole runs, recorded the way the plugin records them, on a fake clock.

``full_run`` is a passing local-style run whose endpoint is created while the job trains;
``stop_after`` cuts it short after any number of events, like a killed run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.report import Recorder

START = 1_764_460_800.0  # 2025-11-30T00:00:00Z
REFERENCES = [
    "Paris is the capital of France.",
    "Water boils at 100 degrees Celsius.",
    "A LoRA adapter trains low-rank updates of the weights.",
]
ANSWERS = [
    "The capital of France is Paris.",
    "Water boils at 100 degrees.",
    "LoRA trains small low-rank matrices.",
]


class Clock:
    """A clock the test moves: ``clock.now`` is what the recorder stamps."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, offset_s: float) -> None:
        self.now = START + offset_s


def recorder(tmp_path: Path, clock: Clock) -> Recorder:
    return Recorder(tmp_path / "events" / "run.jsonl", clock=clock)


def _steps(clock: Clock, rec: Recorder) -> list[tuple[float, Callable[[], Any]]]:
    loss = [[float(s), 4.0 - 0.02 * s] for s in range(100)]
    return [
        (
            0,
            lambda: rec.record(
                "run_started",
                run_id="h2511300000abcd",
                backend="local",
                options={"model_name": "Phi-3-tiny", "job_timeout_s": 3600},
            ),
        ),
        (0, lambda: rec.record("stage_started", name="foundation_model")),
        (
            2,
            lambda: rec.record(
                "model",
                name="Phi-3-tiny",
                version="3",
                id="models:/Phi-3-tiny/3",
                allow_list_source="tags",
                archived=False,
                deprecation={"finetune_retirement": "2027-01-01"},
            ),
        ),
        (2, lambda: rec.record("stage_ended", name="foundation_model", outcome="ok")),
        (2, lambda: rec.record("stage_started", name="endpoint")),
        (2, lambda: rec.record("compute", name="local", sku="Local_CPU", gpus_per_node=0, nodes=2)),
        (
            3,
            lambda: rec.record(
                "dataset", slices={"train_sft": 40, "test_sft": 10, "test_gen": 10}, percent=100.0
            ),
        ),
        (
            3,
            lambda: rec.record(
                "parameters",
                sent={"learning_rate": 1e-4, "max_steps": 100},
                dropped={"unknown_knob": 1},
            ),
        ),
        (4, lambda: rec.record("stage_started", name="finetune_job")),
        (4, lambda: rec.record("job", name="ft-abc", status="Running", url="/ws/jobs/ft-abc.log")),
        (
            30,
            lambda: rec.record(
                "endpoint",
                name="ep-abc",
                provisioning_state="Succeeded",
                auth_mode="key",
                scoring_uri="http://127.0.0.1:5001/score",
            ),
        ),
        (30, lambda: rec.record("stage_ended", name="endpoint", outcome="ok")),
        (1804, lambda: rec.record("job", name="ft-abc", status="Completed")),
        (
            1804,
            lambda: rec.record(
                "metrics", series={"loss": loss, "eval_loss": [[0, 4.5], [99, 3.25]]}
            ),
        ),
        (1804, lambda: rec.record("stage_ended", name="finetune_job", outcome="ok")),
        (
            1805,
            lambda: rec.record(
                "registered_model",
                name="Phi-3-tiny-ft",
                version="1",
                id="models:/Phi-3-tiny-ft/1",
                job_name="ft-abc",
            ),
        ),
        (1805, lambda: rec.record("stage_started", name="deployment")),
        (
            1805,
            lambda: rec.record(
                "deployment",
                name="dep-abc",
                endpoint_name="ep-abc",
                instance_type="Local_CPU",
                instance_count=1,
                provisioning_state="Creating",
            ),
        ),
        (
            2405,
            lambda: rec.record(
                "deployment",
                name="dep-abc",
                endpoint_name="ep-abc",
                instance_type="Local_CPU",
                provisioning_state="Succeeded",
                traffic_percent=100,
            ),
        ),
        (2405, lambda: rec.record("stage_ended", name="deployment", outcome="ok")),
        *[
            (
                2406 + i,
                (
                    lambda i=i: rec.record(
                        "sample",
                        index=i,
                        prompt=[{"role": "user", "content": f"question {i}"}],
                        answer=ANSWERS[i],
                        reference=REFERENCES[i],
                        status="ok",
                        latency_s=0.5 + i,
                    )
                ),
            )
            for i in range(3)
        ],
        (
            2410,
            lambda: rec.record(
                "figure",
                name="log_likelihood_finetuned",
                value=-2.1,
                unit="nats/token",
                better="higher",
            ),
        ),
        (
            2410,
            lambda: rec.record(
                "test",
                nodeid="tests/e2e/test_workflow.py::test_job",
                outcome="passed",
                duration_s=1800.0,
            ),
        ),
        (
            2410,
            lambda: rec.record(
                "test",
                nodeid="tests/e2e/test_workflow.py::test_scoring",
                outcome="passed",
                duration_s=3.0,
            ),
        ),
        (2410, lambda: rec.record("stage_started", name="teardown")),
        (
            2525,
            lambda: rec.record("teardown", resource="endpoint", name="ep-abc", outcome="deleted"),
        ),
        (2530, lambda: rec.record("stage_ended", name="teardown", outcome="ok")),
        (2530, lambda: rec.record("run_ended", exit_status=0, interrupted=False)),
    ]


def full_run(clock: Clock, rec: Recorder, stop_after: int | None = None) -> None:
    """Record a whole passing run, or only its first ``stop_after`` events."""
    for offset, step in _steps(clock, rec)[:stop_after]:
        clock.at(offset)
        step()
