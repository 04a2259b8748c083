"""The fine-tune job process: ``python -m harness.backends.local.training --spec job/spec.json``,
run directly for one process or as every rank of ``torchrun`` for several.

It reports through its status file and its MLflow run; the parent reads both. Rank 0 reports
progress and success; any rank that fails writes its traceback to its log and, unless another
rank already did, ``Failed`` with its rank to the status file, and exits non-zero, which makes
``torchrun`` stop the other ranks. A crash is never mistaken for a finished job.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from harness.backends.base import JOB_FINAL
from harness.backends.local.job_files import (
    MLFLOW_END,
    JobSpec,
    rank_log,
    read_status,
    record_rank,
    write_status,
)
from harness.backends.local.offline import set_offline


def main(argv: Sequence[str] | None = None) -> int:
    marks = {"main": time.time()}  # start-up moments, read by benchmarks/local_e2e.py
    set_offline()
    parser = argparse.ArgumentParser(description="Run one local fine-tune job.")
    parser.add_argument("--spec", type=Path, required=True)
    spec = JobSpec.read(parser.parse_args(argv).spec)
    job_dir, rank = Path(spec.job_dir), int(os.environ.get("RANK", "0"))
    if "LOCAL_RANK" in os.environ:  # a torchrun rank: in a session of its own
        record_rank(job_dir, rank)
        if rank:
            _log_to(rank_log(job_dir, rank))
    if rank == 0 and read_status(job_dir).get("status") not in JOB_FINAL:
        write_status(job_dir, "Running", pid=os.getpid(), started=time.time())
    try:
        summary = _train(spec, rank, marks)
    except Exception as exc:  # reported: traceback to the log, reason to the status file
        traceback.print_exc()
        if report_failure(job_dir, rank, exc, ranked="LOCAL_RANK" in os.environ):
            _end_run(spec, MLFLOW_END["Failed"])
        return 1
    if rank == 0:
        write_status(
            job_dir,
            "Completed",
            summary=summary,
            ended=time.time(),
            peak_rss_mb=_peak_rss_mb(),
            startup=marks,
        )
    return 0


def _train(spec: JobSpec, rank: int, marks: dict[str, float]) -> dict[str, float]:
    from harness.backends.local.training import finetune  # with torch and transformers

    marks["job_modules_imported"] = time.time()
    if rank:
        return finetune.run(spec, None, marks)
    from mlflow.tracking import MlflowClient

    from harness.backends.local.training.metrics import MetricsLog

    client = MlflowClient(tracking_uri=spec.tracking_uri)
    log = MetricsLog(client, spec.run_id)
    marks["mlflow_opened"] = time.time()
    summary = finetune.run(spec, log, marks)
    log.flush()
    client.set_terminated(spec.run_id, MLFLOW_END["Completed"])
    return summary


def report_failure(job_dir: Path, rank: int, exc: Exception, ranked: bool) -> bool:
    """Write ``Failed`` with the cause and the rank, unless a rank already did: the first
    failing rank names the cause, the others usually fail because it did. True if written."""
    if read_status(job_dir).get("status") in JOB_FINAL:
        return False
    where = f"rank {rank}: " if ranked else ""
    write_status(
        job_dir,
        "Failed",
        error=f"{where}{type(exc).__name__}: {exc}",
        failed_rank=rank,
        ended=time.time(),
    )
    return True


def _end_run(spec: JobSpec, status: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=spec.tracking_uri).set_terminated(spec.run_id, status)


def _log_to(path: Path) -> None:
    """Send this process's stdout and stderr (file descriptors too) to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(fd, 1), os.dup2(fd, 2)
    os.close(fd)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB), for the benchmark."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    raise SystemExit(main())
