"""Runs the unit suite again and again beside a CPU hog; prints which tests failed in each round.

A test that passes on a quiet machine and fails on a loaded one fails PR CI now and then; this
loop is how such a test is found, and how a fix is shown to hold (20 green rounds is the goal).
Each round runs ``pytest -m unit -n 2`` (two xdist workers, as on the 2-core CI machine) while
``--hogs`` processes spin at full speed; when pytest-randomly is installed, each round
runs in its own random order (``--randomly-seed`` = the round).

Run: ``.venv/bin/python benchmarks/unit_under_load.py [--rounds 20] [--hogs 2]
[--failures=DIR]``; exit 1 when any round failed. A failed round's whole pytest output is kept
in ``DIR/round-N.log`` (default ``harness-report/unit-under-load``): a flake's traceback is
the only evidence of its cause.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def _spin() -> None:
    while True:
        pass


def _round(number: int, workspace: Path, failures: Path) -> tuple[bool, list[str], float]:
    command = [sys.executable, "-m", "pytest", "-m", "unit", "-q", "-p", "no:cacheprovider"]
    command += ["-n", "2"]
    if importlib.util.find_spec("pytest_randomly") is not None:
        command += [f"--randomly-seed={number}"]  # the plugin loads itself; a new order a round
    env = {**os.environ, "HARNESS_WORKSPACE": str(workspace)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode:
        failures.mkdir(parents=True, exist_ok=True)
        (failures / f"round-{number}.log").write_text(done.stdout + done.stderr)
    return done.returncode == 0, FAILED.findall(done.stdout), took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="runs of the unit suite")
    parser.add_argument("--hogs", type=int, default=2, help="busy-loop processes beside it")
    parser.add_argument(
        "--failures",
        type=Path,
        default=ROOT / "harness-report" / "unit-under-load",
        help="where a failed round's pytest output goes (round-N.log)",
    )
    args = parser.parse_args()
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    failures: Counter[str] = Counter()
    green = 0
    try:
        with tempfile.TemporaryDirectory(prefix="unit-under-load-") as scratch:
            for number in range(1, args.rounds + 1):
                ok, failed, took = _round(number, Path(scratch) / "workspace", args.failures)
                green += ok
                failures.update(failed)
                where = args.failures / f"round-{number}.log"
                status = "green" if ok else f"FAILED {', '.join(failed) or '(see pytest)'}; {where}"
                print(f"round {number}/{args.rounds}: {status} in {took:.0f} s", flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    print(f"{green} of {args.rounds} loaded rounds green, {args.hogs} busy loops beside")
    for test, count in failures.most_common():
        print(f"  {count}x {test}")
    return 0 if green == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
