"""Prints what the run report costs: time to record, build and write it, and its files' sizes.

The event stream is a whole passing run as the unit tests record it (tests/support/run_events.py:
3 scoring samples, 100 training-loss points, stages, teardown). The first write is cold (it
pays for importing matplotlib, jsonschema and sacrebleu, once per run); the rest are warm.
Run: ``.venv/bin/python benchmarks/report_cost.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.report import build_report, read_events, write_report  # noqa: E402
from tests.support.run_events import Clock, full_run, recorder  # noqa: E402


def once(directory: Path) -> dict[str, float]:
    """Seconds spent recording, reading + building, and writing one report."""
    clock = Clock()
    rec = recorder(directory, clock)
    start = time.perf_counter()
    full_run(clock, rec)
    recorded = time.perf_counter()
    report = build_report(*read_events(rec.path))
    built = time.perf_counter()
    write_report(report, directory / "out")
    written = time.perf_counter()
    return {"record": recorded - start, "build": built - recorded, "write": written - built}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        runs = [once(Path(tmp) / str(i)) for i in range(repeat + 1)]
        cold, warm = runs[0], runs[1:]
        events = len(read_events(Path(tmp) / "0" / "events" / "run.jsonl")[0])
        print(f"events recorded: {events} (3 samples, 100 loss points)")
        for phase in ("record", "build", "write"):
            median = statistics.median(r[phase] for r in warm)
            print(f"{phase:<7} cold {cold[phase]:.3f} s   warm median {median:.3f} s")
        total = statistics.median(sum(r.values()) for r in warm)
        print(f"total   cold {sum(cold.values()):.3f} s   warm median {total:.3f} s")
        for path in sorted((Path(tmp) / "0" / "out").iterdir()):
            print(f"{path.name:<13} {path.stat().st_size / 1024:7.1f} KiB")
        events_file = Path(tmp) / "0" / "events" / "run.jsonl"
        print(f"{'events.jsonl':<13} {events_file.stat().st_size / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
