"""Prints the wall time of the unit suite and of importing the plugin.

Targets on the 2-core CI machine: unit suite under 15 s, ``import harness.plugin`` under 0.3 s.
Run: ``.venv/bin/python benchmarks/unit_suite.py [--repeat 5]``.
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
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    baseline = [wall([sys.executable, "-c", "pass"]) for _ in range(repeat)]
    imports = [wall([sys.executable, "-c", "import harness.plugin"]) for _ in range(repeat)]
    net = statistics.median(imports) - statistics.median(baseline)
    print(f"python startup           median {statistics.median(baseline):.3f} s")
    print(
        f"import harness.plugin    median {statistics.median(imports):.3f} s "
        f"(net of startup {net:.3f} s; target < 0.3 s)"
    )
    print(f"heavy modules imported by the plugin: {heavy_modules_loaded_by_plugin() or 'none'}")
    suite = wall([sys.executable, "-m", "pytest", "-m", "unit", "-q", "-p", "no:cacheprovider"])
    print(f"pytest -m unit           wall {suite:.2f} s (target < 15 s)")


if __name__ == "__main__":
    main()
