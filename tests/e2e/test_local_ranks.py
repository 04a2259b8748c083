"""The local backend's fine-tune job with several processes (``torchrun``): a crashing rank fails
the job with that rank's story, and cancelling stops every rank, though torchrun starts each in
a session of its own. Runs when the job has several processes (``--local-train-processes 2``,
as CI's second e2e run, or a machine with several GPUs); skipped otherwise.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import Backend, Compute, JobRun
from harness.config import HarnessConfig
from harness.data import PreparedData
from harness.errors import JobError
from harness.finetune_params import ParameterPlan
from harness.model_card import ModelCard
from harness.waiting import Deadline

START_S = 300.0  # torchrun and two ranks importing torch on two busy cores


@pytest.fixture
def local_ranks(
    backend: Backend, harness_config: HarnessConfig, request: pytest.FixtureRequest
) -> Any:
    """The local backend, when its jobs train with several processes (checked in this order,
    so that another backend creates nothing just to skip)."""
    reason = "needs the local backend with several training processes (--local-train-processes 2)"
    if harness_config.backend != "local":
        pytest.skip(reason)
    if request.getfixturevalue("finetune_compute").gpus_per_node < 2:
        pytest.skip(reason)
    return backend


@pytest.fixture
def long_job(
    local_ranks: Any,
    foundation_model: ModelCard,
    finetune_compute: Compute,
    training_data: PreparedData,
    finetune_parameters: ParameterPlan,
    ownership_tags: dict[str, str],
) -> Iterator[JobRun]:
    """A job that would train for a long time, deleted afterwards whatever happened."""
    parameters = {**finetune_parameters.parameters, "max_steps": 100_000}
    job = local_ranks.submit_finetune(
        foundation_model, finetune_compute, training_data, parameters, "ranks-test", ownership_tags
    )
    try:
        yield job
    finally:
        local_ranks.delete_job(job.name, 30)


def running_ranks(backend: Any, job: JobRun, count: int) -> list[dict[str, Any]]:
    """The job's ranks once ``count`` of them have started."""
    from harness.backends.local.job_files import rank_processes

    job_dir = backend.ws.jobs / job.name
    started = Deadline(START_S).until(lambda: len(rank_processes(job_dir)) >= count, 0.2)
    assert started, f"{count} ranks did not start within {START_S} s: {job.url}"
    return rank_processes(job_dir)


def alive(pid: int) -> bool:
    from harness.backends.local.processes import pid_alive

    return pid_alive(pid)


def test_cancelling_a_job_stops_every_rank(
    local_ranks: Any, long_job: JobRun, finetune_compute: Compute
) -> None:
    ranks = running_ranks(local_ranks, long_job, finetune_compute.gpus_per_node)
    assert all(alive(r["pid"]) for r in ranks)
    local_ranks.jobs.cancel(long_job.name)
    assert local_ranks.jobs.get(long_job.name).status == "Canceled"
    assert [r["rank"] for r in ranks if alive(r["pid"])] == []


def test_a_crashing_rank_fails_the_job_with_its_story(
    local_ranks: Any, long_job: JobRun, finetune_compute: Compute
) -> None:
    ranks = running_ranks(local_ranks, long_job, finetune_compute.gpus_per_node)
    os.kill(ranks[-1]["pid"], signal.SIGKILL)  # as the OOM killer would
    with pytest.raises(JobError, match="ended with status Failed") as raised:
        local_ranks.wait_for_job(long_job, START_S)
    message, killed = str(raised.value), ranks[-1]["rank"]
    assert re.search(rf"Root Cause.*rank\s*:\s*{killed} .*SIGKILL", message, re.S), message
    assert f"rank{killed}.log" in message  # the killed rank's own log is shown too
    assert [r["rank"] for r in ranks if alive(r["pid"])] == []
