"""Prints how close the harness comes to the Azure service's own critical path.

The session fixture chain runs through pytest, as the nightly suite runs (``tests/e2e`` with
``--backend azure``), against the fake of Azure ML with scripted service latencies: cluster
creation, endpoint creation, the fine-tune job, model registration, deployment. The service's
critical path is the longest chain of dependent latencies: the job needs the cluster,
registration needs the job, the deployment needs the model and the endpoint, and the endpoint
depends on nothing, so it overlaps the job. The harness's wall time runs from the first test's
setup to the end of the last test's call (imports done before, teardown excluded); the gaps
between dependent steps, read from when the fake received each request, show where the rest
went. Target: wall time / critical path <= 1.05.

The harness's own cost per step is fixed (building and uploading the pipeline job with
azure-ai-ml takes about a second of CPU), while live latencies are minutes to hours, so the
default scale doubles the issue's example latencies (a 36 s critical path, a run well under a
minute); ``--scale 1`` shows the same fixed costs against 18 s.

Run: ``.venv/bin/python benchmarks/azure_critical_path.py [--scale 2.0]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake lives in tests/support

from tests.support.azure_fake import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML  # noqa: E402
from tests.support.azure_fake.plugin import AzureFakePlugin  # noqa: E402

# seconds at scale 1: the example, kept short so a run takes well under a minute
LATENCIES = {"cluster": 2.0, "endpoint": 6.0, "job": 10.0, "registration": 1.0, "deployment": 5.0}
LRO_POLL_MS = "20"  # how often the SDK's pollers ask (retry-after-ms)


def critical_path(s: dict[str, float]) -> float:
    return max(s["cluster"] + s["job"] + s["registration"], s["endpoint"]) + s["deployment"]


def script(latencies: dict[str, float]) -> Any:
    def apply(fake: FakeAzureML) -> None:
        fake.ops.retry_after_ms = LRO_POLL_MS
        fake.ops.latency.update(
            compute=latencies["cluster"],
            endpoint=latencies["endpoint"],
            deployment=latencies["deployment"],
        )
        fake.jobs.duration_s = latencies["job"]
        fake.router.latency["PUT model"] = latencies["registration"]

    return apply


@dataclass
class Clock:
    """First test's setup to the last test's call: the workflow, not imports or teardown."""

    start: float | None = None
    end: float | None = None

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.start = self.start or time.monotonic()  # the clock the fake stamps requests with

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
        if call.when == "call":
            self.end = time.monotonic()


def gaps(fake: FakeAzureML, clock: Clock, s: dict[str, float]) -> dict[str, float]:
    """Seconds the harness added between dependent steps of the critical path."""

    def sent(route: str) -> float:
        return next(c.at for c in fake.requests if (c.method, c.route) == ("PUT", route))

    compute, job, model, deployment = (sent(r) for r in ("compute", "job", "model", "deployment"))
    assert clock.start is not None and clock.end is not None
    return {
        "start -> cluster requested": compute - clock.start,
        "cluster ready -> job submitted": job - compute - s["cluster"],
        "job done -> registration requested": model - job - s["job"],
        "model registered -> deployment requested": deployment - model - s["registration"],
        "deployment ready -> last test done": clock.end - deployment - s["deployment"],
    }


def preload() -> None:
    """What the run imports on first use, imported before the clock starts."""
    import azure.ai.ml
    import azure.ai.ml.dsl
    import azure.ai.ml.entities  # noqa: F401
    import datasets  # noqa: F401
    import mlflow.store.tracking.rest_store  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=2.0, help="multiply every latency")
    parser.add_argument(
        "--job-poll",
        type=float,
        default=0.05,
        help="seconds between the harness's job status reads (30 s live)",
    )
    args = parser.parse_args()
    latencies = {k: v * args.scale for k, v in LATENCIES.items()}
    preload()
    fake = AzureFakePlugin(script(latencies), poll_interval_s=args.job_poll)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as workspace:
        code = pytest.main(
            [
                str(ROOT / "tests" / "e2e"),
                "-m",
                "e2e",
                "-q",
                "-p",
                "no:cacheprovider",
                "--backend",
                "azure",
                "--model-name",
                "Phi-4",
                "--azure-subscription-id",
                SUBSCRIPTION,
                "--azure-resource-group",
                RESOURCE_GROUP,
                "--azure-workspace",
                WORKSPACE,
                "--workspace",
                workspace,
                "--dataset",
                str(ROOT / "harness" / "resources" / "ultrachat_mini"),
                "--dataset-percent",
                "100",
            ],
            plugins=[fake, clock],
        )
    if code != 0 or clock.start is None or clock.end is None or fake.fake is None:
        print(f"the suite did not pass against the fake (exit code {code})")
        return 1
    wall, path = clock.end - clock.start, critical_path(latencies)
    print("service latencies: " + ", ".join(f"{k} {v:.1f} s" for k, v in latencies.items()))
    print(
        f"service critical path: cluster + job + registration + deployment = {path:.2f} s "
        f"(endpoint {latencies['endpoint']:.1f} s overlaps the job)"
    )
    print(f"harness wall time (first test setup to last test call): {wall:.2f} s")
    for step, seconds in gaps(fake.fake, clock, latencies).items():
        print(f"  added by the harness, {step}: {seconds:.2f} s")
    print(f"ratio: {wall / path:.3f} (target <= 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
