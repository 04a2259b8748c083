"""The files of a fine-tune job's directory: what the job process is told (its spec) and what
it reports back (its status file), plus its process ids and log.

Both the harness and the job process read and write them, and any process (another
pytest-xdist worker, the sweep) can read a job's state without having started it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.files import read_state, write_json

STATUS_FILE = "status.json"  # written by the job process (and by the parent for its end)
PROCESS_FILE = "process.json"  # pid and process group, written by the parent only
SPEC_FILE = "spec.json"
LOG_FILE = "job.log"


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

    def write(self) -> Path:
        path = Path(self.job_dir) / SPEC_FILE
        write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def argv(self, python: str) -> list[str]:
        return [
            python,
            "-m",
            "harness.backends.local.training",
            "--spec",
            str(Path(self.job_dir) / SPEC_FILE),
        ]


def write_status(job_dir: Path, status: str, **extra: Any) -> None:
    previous = read_status(job_dir)
    write_json(
        job_dir / STATUS_FILE, {**previous, **extra, "status": status, "updated": time.time()}
    )


def read_status(job_dir: Path) -> dict[str, Any]:
    return read_state(job_dir / STATUS_FILE)
