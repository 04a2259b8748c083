"""Prints the wall time of the main job (``pytest -m e2e`` on the local backend), fresh and warm.

Fresh is a new user's first run, or a nightly CI job that keeps nothing between nights: a new
workspace and an empty model cache, so the default tiny model is built first. Warm is a new
workspace beside a model cache that holds the build (the next run on the same machine, or a CI
job that restores the cache). Targets on 2 quiet cores: fresh at most 60 s, warm at most 25 s.
The two kinds alternate in one run, each in its own workspace, so that other work on the machine
weighs on both alike; each fresh run gets its own empty cache, and the warm runs reuse the first
fresh run's.

Run: ``.venv/bin/python benchmarks/main_job.py [--repeat 3]``; it exits 1 if a run fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"fresh": 60.0, "warm": 25.0}
MAIN_JOB = [sys.executable, "-m", "pytest", "-m", "e2e", "-q", "-p", "no:cacheprovider"]


def timed_run(base: Path, name: str, model_cache: Path) -> float:
    """One main job in workspace ``base/name``, with its report beside it; its wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_"))}
    env |= {
        "HARNESS_WORKSPACE": str(base / name / "workspace"),
        "HARNESS_REPORT_DIR": str(base / name / "report"),
    }
    command = [*MAIN_JOB, f"--model-cache={model_cache}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise SystemExit(f"{name}: pytest -m e2e exited {done.returncode}:\n{tail}")
    print(f"{name:<8} {elapsed:6.1f} s", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    times: dict[str, list[float]] = {"fresh": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="harness-main-job-") as tmp:
        base = Path(tmp)
        for i in range(1, args.repeat + 1):
            times["fresh"].append(timed_run(base, f"fresh-{i}", base / f"cache-{i}"))
            times["warm"].append(timed_run(base, f"warm-{i}", base / "cache-1"))
    for kind, walls in times.items():
        median, target = statistics.median(walls), TARGETS_S[kind]
        verdict = "met" if median <= target else "not met"
        print(
            f"main job, {kind:<5} median {median:5.1f} s, best {min(walls):5.1f} s "
            f"of {len(walls)} (target at most {target:.0f} s: {verdict})"
        )


if __name__ == "__main__":
    main()
