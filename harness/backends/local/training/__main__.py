"""The fine-tune job process: ``python -m harness.backends.local.training --spec job/spec.json``.

It reports through its status file and its MLflow run; the parent reads both. Any failure is
written to the job log with its traceback and to the status file as ``Failed``, and the exit
code is non-zero, so a crash is never mistaken for a finished job.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from harness.backends.local.job_files import JobSpec, write_status
from harness.backends.local.processes import set_offline


def main(argv: Sequence[str] | None = None) -> int:
    set_offline()
    parser = argparse.ArgumentParser(description="Run one local fine-tune job.")
    parser.add_argument("--spec", type=Path, required=True)
    spec = JobSpec.read(parser.parse_args(argv).spec)
    job_dir = Path(spec.job_dir)
    write_status(job_dir, "Running", pid=os.getpid(), started=time.time())
    from mlflow.tracking import MlflowClient

    from harness.backends.local.training import finetune
    from harness.backends.local.training.metrics import MetricsLog

    client = MlflowClient(tracking_uri=spec.tracking_uri)
    log = MetricsLog(client, spec.run_id)
    try:
        summary = finetune.run(spec, log)
        log.flush()
    except Exception as exc:  # reported: traceback to the log, reason to the status file
        traceback.print_exc()
        write_status(job_dir, "Failed", error=f"{type(exc).__name__}: {exc}", ended=time.time())
        client.set_terminated(spec.run_id, "FAILED")
        return 1
    write_status(
        job_dir, "Completed", summary=summary, ended=time.time(), peak_rss_mb=_peak_rss_mb()
    )
    client.set_terminated(spec.run_id, "FINISHED")
    return 0


def _peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB), for the benchmark."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    raise SystemExit(main())
