"""Prints what ``--record-traffic`` costs: the e2e suite on ``--backend azure`` against the fake
of Azure ML, with and without recording, alternated in one process (side by side, so the
machine's load hits both alike), and the ratio of their median wall times. Target: < 1.05.

The fake answers at once, so this is the worst case: against the live service a run waits
minutes to hours for the same number of requests. The service latencies of
``azure_critical_path.py`` (scaled down by ``--scale``) keep the run's shape: pollers that
poll, an endpoint that overlaps the job. Wall time is the pytest session's (the cassette is
written when the session ends, so the save is inside it).

Run: ``.venv/bin/python benchmarks/record_traffic.py [--rounds 3] [--scale 0.25]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake lives in tests/support

from benchmarks.azure_critical_path import LATENCIES, preload, script  # noqa: E402
from tests.support.azure_fake import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE  # noqa: E402
from tests.support.azure_fake.plugin import AzureFakePlugin  # noqa: E402


def one_run(scale: float, record: Path | None) -> float:
    """Seconds of one e2e session against the fake; ``record``: the cassette directory."""
    latencies = {k: v * scale for k, v in LATENCIES.items()}
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as scratch:
        args = [
            str(ROOT / "tests" / "e2e" / "test_workflow.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "log_cli=false",
            "--backend=azure",
            "--model-name=Phi-4",
            f"--azure-subscription-id={SUBSCRIPTION}",
            f"--azure-resource-group={RESOURCE_GROUP}",
            f"--azure-workspace={WORKSPACE}",
            f"--workspace={scratch}",
            f"--report-dir={Path(scratch) / 'report'}",
            f"--dataset={ROOT / 'harness' / 'resources' / 'ultrachat_mini'}",
            "--dataset-percent=100",
        ]
        if record is not None:
            args.append(f"--record-traffic={record}")
        started = time.perf_counter()
        code = pytest.main(args, plugins=[AzureFakePlugin(script(latencies), 0.05)])
        took = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the suite did not pass against the fake (exit code {code})")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternated")
    parser.add_argument("--scale", type=float, default=0.25, help="multiply every latency")
    args = parser.parse_args()
    preload()
    one_run(args.scale, None)  # warm-up: first-use imports and caches, not counted
    plain, recorded, sizes = [], [], []
    with tempfile.TemporaryDirectory(prefix="harness-cassettes-") as cassettes:
        for round_ in range(args.rounds):
            folder = Path(cassettes) / str(round_)
            recorded.append(one_run(args.scale, folder))
            plain.append(one_run(args.scale, None))
            sizes.append(sum(p.stat().st_size for p in folder.glob("*.yaml")))
    print("plain runs (s):     " + ", ".join(f"{t:.2f}" for t in plain))
    print("recorded runs (s):  " + ", ".join(f"{t:.2f}" for t in recorded))
    print(f"cassette size: {statistics.median(sizes) / 1024:.0f} KiB")
    ratio = statistics.median(recorded) / statistics.median(plain)
    print(f"ratio recorded / plain (medians): {ratio:.3f} (target < 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
