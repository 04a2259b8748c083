"""The unchanged e2e suite, run through the plugin against ``--backend azure`` and the fake of
Azure ML, in this process: the nightly run proven offline, and its first failure on today's
registry (an archived default model) proven to stop before anything is created."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.azure_fake import FakeAzureML
from tests.support.azure_fake.endpoints import model_error
from tests.support.azure_fake.jobs import WALK
from tests.support.azure_fake.plugin import AzureFakePlugin

HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
SHIPPED = HERE.parents[1] / "harness" / "resources" / "ultrachat_mini"
ARGS = [
    "--backend",
    "azure",
    "--azure-subscription-id",
    "00000000-0000-4000-8000-000000000000",
    "--azure-resource-group",
    "rg-harness",
    "--azure-workspace",
    "ws-harness",
    "--dataset",
    str(SHIPPED),
    "--dataset-percent",
    "100",
    "-p",
    "no:cacheprovider",
    "--tb=line",  # each failure's message, without parsing its files' source for long tracebacks
]
CREATING = ("PUT", "POST", "PATCH", "DELETE")

pytestmark = pytest.mark.usefixtures("imported_before_the_snapshot", "plots_drawn_elsewhere")


@pytest.fixture(scope="module")
def imported_before_the_snapshot(report_modules_loaded: None) -> None:
    """What the inner runs import beyond the report, imported before the pytester fixture
    snapshots sys.modules (see ``report_modules_loaded``).

    A module imported first inside a run is removed from sys.modules after it, and importing
    it again runs it again: ``datasets`` then registers its pyarrow extension types a second
    time (ArrowKeyError), and azure-ai-ml's import-time registrations repeat. That, not
    pytester itself, is what broke the earlier in-process attempt; importing them here keeps
    one copy for the whole session.
    """
    import azure.ai.ml
    import azure.ai.ml.dsl
    import azure.ai.ml.entities  # noqa: F401
    import datasets  # noqa: F401
    import mlflow.store.tracking.rest_store  # noqa: F401


def isolated(pytester: pytest.Pytester) -> list[str]:
    """An inner run that sees only its own directory: not this repository's ini, and no
    conftest.py above it. With ``-c /dev/null`` alone pytest's conftest boundary is /dev, so
    each run listed every directory from / down (/tmp's hundreds of entries) and would have
    loaded a conftest.py found in any of them."""
    path = str(pytester.path)
    return ["--rootdir", path, "-c", os.devnull, f"--confcutdir={path}"]


def run_suite(
    pytester: pytest.Pytester,
    *args: str,
    script: Callable[[FakeAzureML], None] | None = None,
    metadata_key: str | None = "system_metadata",
) -> tuple[pytest.RunResult, AzureFakePlugin]:
    (pytester.path / "e2e").mkdir()
    shutil.copy(E2E / "conftest.py", pytester.path / "e2e" / "conftest.py")
    shutil.copy(E2E / "test_workflow.py", pytester.path / "e2e" / "test_azure_copy.py")
    plugin = AzureFakePlugin(script, metadata_key=metadata_key)
    return pytester.runpytest_inprocess(*isolated(pytester), *ARGS, *args, plugins=[plugin]), plugin


def test_the_e2e_suite_passes_against_the_fake_service(pytester: pytest.Pytester) -> None:
    """Phi-3-mini 15 pinned: lists in system metadata as JSON text, retired NCv3 sizes first
    in its inference list, past its fine-tune retirement date (a warning, not an error)."""
    result, plugin = run_suite(
        pytester, "--model-name", "Phi-3-mini-4k-instruct", "--model-version", "15"
    )
    result.assert_outcomes(passed=12, skipped=2)  # no likelihood on Azure, no --compare-to
    result.stdout.fnmatch_lines(["*RetiredModelWarning*passed its fine-tune retirement*"])
    assert plugin.fake is not None
    plugin.fake.check()
    (polls,) = plugin.fake.jobs.polls.values()
    assert polls > len(WALK), "waited through NotResponding and Unknown to Completed"
    assert plugin.fake.calls("endpoint", "DELETE"), "teardown deletes the endpoint"
    (deployment,) = plugin.fake.calls("deployment", "PUT")
    assert deployment.body["properties"]["instanceType"] == "Standard_NC24ads_A100_v4"


def test_an_archived_model_stops_the_run_before_anything_is_created(
    pytester: pytest.Pytester,
) -> None:
    result, plugin = run_suite(pytester, "--model-name", "Phi-3-mini-4k-instruct")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*may be archived*--model-version 15*"])
    assert not [c.url for c in plugin.sent() if c.method in CREATING]


def test_strict_deprecation_stops_a_retired_model_before_anything_is_created(
    pytester: pytest.Pytester,
) -> None:
    result, plugin = run_suite(
        pytester,
        "--model-name",
        "Phi-3-mini-4k-instruct",
        "--model-version",
        "15",
        "--strict-deprecation",
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*passed its fine-tune retirement date 2025-08-30*"])
    assert not [c.url for c in plugin.sent() if c.method in CREATING]


def test_a_failed_scoring_test_shows_status_reason_and_body(pytester: pytest.Pytester) -> None:
    def model_fails(fake: FakeAzureML) -> None:
        fake.endpoints.score = model_error(
            "500", "Internal Server Error", {"error": "CUDA error: device-side assert"}
        )

    result, _ = run_suite(pytester, "--model-name", "Phi-4", script=model_fails)
    result.assert_outcomes(passed=10, failed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*HTTP 424*CUDA error: device-side assert*model error: the scoring container answered "
            "500 (Internal Server Error)*",
            "*HTTP 424 (model error: the scoring container answered 500 (Internal Server Error))*"
            "CUDA error: device-side assert*",
        ]
    )


def test_the_e2e_suite_passes_on_the_finetuning_job_route(pytester: pytest.Pytester) -> None:
    """Managed compute: the same suite, a FineTuning job at the preview api-version instead of
    the pipeline, no cluster, the job's own registered model on the same key-auth endpoint."""
    result, plugin = run_suite(
        pytester, "--model-name", "Phi-4", "--finetune-route", "finetuning-job"
    )
    result.assert_outcomes(passed=12, skipped=2)
    assert plugin.fake is not None
    plugin.fake.check()
    (job,) = plugin.fake.calls("finetuning.job", "PUT")
    assert job.query["api-version"] == ["2024-10-01-preview"]
    assert job.body["properties"]["resources"]["instanceTypes"] == ["Standard_NC24ads_A100_v4"]
    assert not plugin.fake.calls("compute", "PUT"), "the route creates no cluster"
    assert plugin.fake.calls("endpoint", "DELETE"), "teardown deletes the endpoint"


def test_the_e2e_suite_passes_serverless(pytester: pytest.Pytester) -> None:
    """Serverless: no compute, the job's model deployed as a serverless endpoint and scored at
    its chat completions route with its key; the endpoint is deleted at teardown."""
    result, plugin = run_suite(
        pytester,
        "--model-name",
        "Phi-4",
        "--finetune-route",
        "finetuning-job",
        "--serverless",
    )
    result.assert_outcomes(passed=11, skipped=3)
    assert plugin.fake is not None
    plugin.fake.check()
    (job,) = plugin.fake.calls("finetuning.job", "PUT")
    assert "resources" not in job.body["properties"], "serverless: no instance types"
    (created,) = plugin.fake.calls("serverless", "PUT")
    assert created.body["properties"]["modelSettings"]["modelId"].endswith(
        "/models/Phi-4-ultrachat-200k/versions/1"
    )
    assert plugin.fake.serverless.chats, "scored at /v1/chat/completions"
    assert plugin.fake.calls("serverless", "DELETE"), "teardown deletes the serverless endpoint"
    assert not plugin.fake.calls("endpoint", "PUT"), "no managed online endpoint"


def test_the_default_model_without_allow_lists_stops_before_anything_is_created(
    pytester: pytest.Pytester,
) -> None:
    """Phi-4-mini-instruct, the default, answered as the recording answers: no system
    metadata, so no allow-list anywhere."""
    result, plugin = run_suite(pytester, metadata_key=None)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*the registry returned no allow-lists for Phi-4-mini-instruct:1*looked in*"
            "tag finetune_compute_allow_list*pass --compute-sku and --instance-type*"
        ]
    )
    assert not [c.url for c in plugin.sent() if c.method in CREATING]


def test_sizes_chosen_explicitly_run_and_every_record_says_so(pytester: pytest.Pytester) -> None:
    size = "Standard_NC24ads_A100_v4"
    explicit = ("--compute-sku", size, "--instance-type", size)
    result, plugin = run_suite(pytester, *explicit, metadata_key=None)
    result.assert_outcomes(passed=11, skipped=3)
    result.stdout.fnmatch_lines(
        ["*harness verdict: PASSED*", "harness: allow-lists unknown: sizes chosen explicitly"]
    )
    report = json.loads((pytester.path / "harness-report" / "report.json").read_text())
    assert report["model"]["explicit_sizes"] == "allow-lists unknown: sizes chosen explicitly"
    assert "finetune_compute_allow_list not found (looked in" in report["model"]["allow_lists"]
    skipped = [t for t in report["tests"] if "foundation_model_resolves" in t["nodeid"]]
    assert [t["outcome"] for t in skipped] == ["skipped"]
    assert "allow-lists unknown" in (pytester.path / "harness-report" / "report.md").read_text()
    assert plugin.fake is not None
    (deployment,) = plugin.fake.calls("deployment", "PUT")
    assert deployment.body["properties"]["instanceType"] == size
