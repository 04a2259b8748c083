"""Prints the wall time of the unit suite and of importing the plugin.

Targets on the 2-core CI machine: the README's test command (the unit suite on two xdist
workers) under 15 s, ``import harness.plugin`` under 0.3 s.
Run: ``.venv/bin/python benchmarks/unit_suite.py [--repeat 5] [--suite-repeat 3]``; the suite is
timed serially and with two xdist workers, the two alternated. Run ``scripts/setup.sh`` first,
as the README's command does: it compiles the tests, which a machine that sets
``PYTHONDONTWRITEBYTECODE`` would otherwise rewrite and compile in every process (about 1 s of
each xdist worker's start).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("azure.ai.ml", "torch", "transformers", "mlflow", "datasets", "peft")


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def python_speed() -> float:
    """Seconds one core takes for a fixed pure-Python loop, best of 3 (the suite is mostly
    interpreted Python): a rough figure of the machine's speed that day, to set figures of
    different machines side by side. Rough: on 2026-12-04 it stayed at 0.52-0.54 s while the
    suite's own time on that machine drifted from 19 to 34 s."""
    probe = (
        "import time\nt = time.perf_counter()\ntotal = 0\n"
        "for i in range(10_000_000):\n    total += i\nprint(time.perf_counter() - t)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
        for _ in range(3)
    ]
    return min(float(run.stdout) for run in runs)


def heavy_modules_loaded_by_plugin() -> list[str]:
    probe = (
        "import json, sys, harness.plugin; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return list(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each import timing")
    parser.add_argument("--suite-repeat", type=int, default=3, help="runs of each suite timing")
    args = parser.parse_args()
    repeat, suite_repeat = args.repeat, args.suite_repeat
    baseline = [wall([sys.executable, "-c", "pass"]) for _ in range(repeat)]
    imports = [wall([sys.executable, "-c", "import harness.plugin"]) for _ in range(repeat)]
    net = statistics.median(imports) - statistics.median(baseline)
    print(f"python loop (speed ref.) best {python_speed():.2f} s")
    print(f"python startup           median {statistics.median(baseline):.3f} s")
    print(
        f"import harness.plugin    median {statistics.median(imports):.3f} s "
        f"(net of startup {net:.3f} s; target < 0.3 s)"
    )
    print(f"heavy modules imported by the plugin: {heavy_modules_loaded_by_plugin() or 'none'}")
    unit = [sys.executable, "-m", "pytest", "-m", "unit", "-q", "-p", "no:cacheprovider"]
    serial: list[float] = []
    parallel: list[float] = []
    for _ in range(suite_repeat):  # alternated: a shared machine's slow minute hits both
        serial.append(wall(unit))
        parallel.append(wall([*unit, "-n", "2"]))
    for label, runs, target in (("", serial, ""), (" -n 2", parallel, " (target < 15 s)")):
        shown = " ".join(f"{run:.2f}" for run in runs)
        print(
            f"{'pytest -m unit' + label:24s} wall median {statistics.median(runs):.2f} s{target}"
            f"  (runs: {shown})"
        )


if __name__ == "__main__":
    main()
