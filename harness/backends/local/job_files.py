"""The files of a fine-tune job's directory: what the job process is told (its spec) and what
it reports back (its status file), plus its process ids and logs.

Both the harness and the job process read and write them, and any process (another
pytest-xdist worker, the sweep) can read a job's state without having started it.

A job of several processes runs under ``torchrun``, which starts each rank in a session of its
own: signalling the launcher's process group does not reach them. So each rank records its
process (``rank<N>.json``) and the harness stops those groups too; ranks above 0 write their
output to ``rank<N>.log`` (rank 0 and the launcher write to ``job.log``), so a failed rank's
own log tail can be shown.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.files import read_state, write_json

STATUS_FILE = "status.json"  # written by the job process (and by the parent for its end)
PROCESS_FILE = "process.json"  # pid and process group of the launcher, written by the parent
SPEC_FILE = "spec.json"
LOG_FILE = "job.log"
TRAINING_MODULE = "harness.backends.local.training"
# The MLflow status that ends a run in each end state (a job's run, a model build's run)
MLFLOW_END = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}


@dataclass(frozen=True)
class JobSpec:
    """Everything the job process needs; paths are absolute."""

    job_name: str
    tracking_uri: str
    run_id: str
    model_dir: str
    train_file: str
    test_file: str
    output_dir: str
    job_dir: str
    device: str = "cpu"
    parameters: dict[str, Any] = field(default_factory=dict)
    processes: int = 1  # data-parallel ranks: one per GPU, or CPU processes with gloo

    def write(self) -> Path:
        path = Path(self.job_dir) / SPEC_FILE
        write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def argv(self, python: str) -> list[str]:
        """The job's command: the training module itself for one process, else ``torchrun``
        (a standalone rendezvous on a free local port, no restarts: a failed rank fails the
        job). One process needs no launcher, as with ``accelerate launch``."""
        entry = ["-m", TRAINING_MODULE, "--spec", str(Path(self.job_dir) / SPEC_FILE)]
        if self.processes <= 1:
            return [python, *entry]
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nnodes=1"]
        ranks = [f"--nproc-per-node={self.processes}", "--max-restarts=0"]
        return [python, *launcher, *ranks, *entry]

    def env(self, cpus: int | None = None) -> dict[str, str]:
        """Environment for the launcher: the machine's cores shared among the ranks (torchrun
        alone would give each rank one thread)."""
        if self.processes <= 1:
            return {}
        threads = max(1, (cpus or os.cpu_count() or 1) // self.processes)
        return {"OMP_NUM_THREADS": str(threads)}


def write_status(job_dir: Path, status: str, **extra: Any) -> None:
    previous = read_status(job_dir)
    write_json(
        job_dir / STATUS_FILE, {**previous, **extra, "status": status, "updated": time.time()}
    )


def read_status(job_dir: Path) -> dict[str, Any]:
    return read_state(job_dir / STATUS_FILE)


def rank_log(job_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` writes its output."""
    return job_dir / (LOG_FILE if rank == 0 else f"rank{rank}.log")


def record_rank(job_dir: Path, rank: int) -> None:
    """Written by each rank of a several-process job when it starts: torchrun gives each rank
    a session of its own, so the launcher's group does not hold them; the record proves to
    whoever stops them later (cancel, the sweep) that the pid is still this rank."""
    from harness.backends.local.processes import ProcessRecord

    write_json(
        job_dir / f"rank{rank}.json", {"rank": rank, **ProcessRecord.of_this_process().to_dict()}
    )


def rank_processes(job_dir: Path) -> list[dict[str, Any]]:
    """What ``record_rank`` wrote, by rank."""
    found = [read_state(path) for path in job_dir.glob("rank*.json")]
    return sorted((f for f in found if "pid" in f), key=lambda f: int(f.get("rank", 0)))
