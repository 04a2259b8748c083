"""``python -m harness check --backend azure`` against the fake: read-only, and non-zero with
the reasons whenever a nightly run would fail."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import responses

import harness.backends
from harness.__main__ import main
from tests.support.azure_fake import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    FakeAzureML,
    make_backend,
)

ARGS = [
    "check",
    "--backend",
    "azure",
    "--azure-subscription-id",
    SUBSCRIPTION,
    "--azure-resource-group",
    RESOURCE_GROUP,
    "--azure-workspace",
    WORKSPACE,
]
READ_ONLY = ("GET", "HEAD")


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureML]:
    """The fake behind ``create_backend``, built for the config the command resolves."""
    for name in list(os.environ):
        if name.startswith(("HARNESS_", "AZURE_")):
            monkeypatch.delenv(name)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeAzureML(rsps, metadata_key="system_metadata")
        monkeypatch.setattr(harness.backends, "create_backend", lambda cfg, **_: make_backend(cfg))
        yield fake
        fake.settle()


def check(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML, *argv: str
) -> tuple[int, list[str]]:
    code = main([*ARGS, *argv])
    out, err = capsys.readouterr()
    assert err == "" and "Traceback" not in out
    fake.check()
    assert [c.url for c in fake.requests if c.method not in READ_ONLY] == [], "read-only"
    return code, out.splitlines()


def failing(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def test_a_workspace_ready_for_a_nightly_passes(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    code, lines = check(capsys, fake, "--model-name", "Phi-4")
    assert code == 0, lines
    text = "\n".join(lines)
    assert "Phi-4:8" in text and "in registry azureml" in text
    assert "finetune_compute_allow_list from system_metadata" in text
    assert "fine-tune Standard_NC24ads_A100_v4 (1 GPU, 24 vCPUs" in text
    assert "fewest GPUs" in text
    assert "standardNCADSA100v4Family: 96 of 96 dedicated vCPUs free, 48 needed" in text
    assert "0 endpoints in this workspace" in text and "limit 50" in text
    assert "chat_completion_pipeline 0.0.82 (label latest) resolves in registry azureml" in text
    assert lines[-1].startswith("check: 0 problem(s); a nightly run could start")


def test_check_speaks_json_for_scripts(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    code, lines = check(capsys, fake, "--model-name", "Phi-3-mini-4k-instruct", "--json")
    found = json.loads("\n".join(lines))
    assert code == 1 and found["could_start"] is False  # the archived model
    assert {"level", "topic", "text"} == set(found["findings"][0])
    assert any(f["level"] == "FAIL" and f["topic"] == "model" for f in found["findings"])


def test_the_archived_seed_model_fails_with_the_reason(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    code, lines = check(capsys, fake, "--model-name", "Phi-3-mini-4k-instruct")
    assert code == 1
    (model,) = failing(lines)
    assert "may be archived" in model and "--model-version 15" in model
    assert any(line.startswith("ok   workspace:") for line in lines), "the rest still runs"


def test_a_pinned_retired_model_warns_or_fails_when_strict(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    pinned = ("--model-name", "Phi-3-mini-4k-instruct", "--model-version", "15")
    code, lines = check(capsys, fake, *pinned)
    assert code == 0
    assert any(line.startswith("warn deprecation:") and "2025-08-30" in line for line in lines)
    assert any("inference Standard_NC24ads_A100_v4" in line for line in lines), (
        "the retired NCv3 sizes first in its list are skipped"
    )
    code, lines = check(capsys, fake, *pinned, "--strict-deprecation")
    assert code == 1 and "--strict-deprecation" in failing(lines)[0]


def test_exhausted_quota_fails(capsys: pytest.CaptureFixture[str], fake: FakeAzureML) -> None:
    fake.workspace.usage["standardNCADSA100v4Family"] = (80, 96)
    code, lines = check(capsys, fake, "--model-name", "Phi-4")
    assert code == 1
    (quota,) = failing(lines)
    assert "16 of 96 dedicated vCPUs free, 48 needed" in quota and "quota increase" in quota


def test_endpoints_at_the_limit_fail(capsys: pytest.CaptureFixture[str], fake: FakeAzureML) -> None:
    for name in ("ep-a", "ep-b"):
        fake.endpoints.endpoints[name] = fake.endpoints._body(name, {}, "Succeeded")
    code, lines = check(capsys, fake, "--model-name", "Phi-4", "--endpoint-limit", "2")
    assert code == 1
    assert "2 endpoints in this workspace" in failing(lines)[0]


def test_a_registry_the_credential_may_not_read_is_named(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    fake.router.inject(
        "registry.model.versions",
        403,
        body={"error": {"code": "AuthorizationFailed", "message": "not allowed"}},
    )
    code, lines = check(capsys, fake, "--model-name", "Phi-4")
    assert code == 1
    assert (
        "refused to show model Phi-4 (label latest) to this credential (HTTP 403"
        in (failing(lines)[0])
    )


def test_an_unusable_existing_cluster_fails(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    fake.workspace.add_compute("harness-finetune-gpu", "Standard_NC24ads_A100_v4", state="Failed")
    code, lines = check(capsys, fake, "--model-name", "Phi-4")
    assert code == 1 and "is in state Failed" in failing(lines)[0]


def test_check_is_for_azure_only(capsys: pytest.CaptureFixture[str], fake: FakeAzureML) -> None:
    assert main(["check", "--backend", "local"]) == 2
    assert "pass --backend azure" in capsys.readouterr().err
    assert fake.requests == []


ROUTE = ("--finetune-route", "finetuning-job")


def test_the_finetuning_job_route_is_described_and_needs_no_component_or_cluster(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    code, lines = check(capsys, fake, "--model-name", "Phi-4", *ROUTE)
    (route,) = [line for line in lines if line.startswith("ok   route:")]
    assert "route finetuning-job" in route and "api_version 2024-10-01-preview" in route
    assert "model azureml://registries/azureml/models/Phi-4/versions/8" in route
    assert "model_registry azureml" in route and "managed" in route
    assert not [line for line in lines if " pipeline:" in line or " cluster:" in line]
    assert not [c for c in fake.requests if c.route.startswith("registry.component")]
    assert code == 0, lines


def test_serverless_in_a_region_the_table_leaves_out_fails(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    pinned = ("--model-name", "Phi-3-mini-4k-instruct", "--model-version", "15")
    code, lines = check(capsys, fake, *pinned, *ROUTE, "--serverless")
    (line,) = [x for x in lines if " serverless:" in x]
    assert line.startswith("FAIL") and "region eastus does not support" in line
    assert "eastus2" in line and "chat_completion_with_model_as_service.ipynb" in line
    assert code != 0


def test_serverless_for_a_model_the_table_does_not_know_warns(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    code, lines = check(capsys, fake, "--model-name", "Phi-4", *ROUTE, "--serverless")
    (line,) = [x for x in lines if " serverless:" in x]
    assert line.startswith("warn") and "not in the serverless fine-tuning table" in line
    assert code == 0, "a warning is no failure"


def test_the_recorded_get_without_allow_lists_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    """The default model, answered as the recording answers: no system metadata at all."""
    fake.registry.metadata_key = None
    code, lines = check(capsys, fake)
    assert code == 1
    text = "\n".join(lines)
    assert "Phi-4-mini-instruct:1" in text
    assert "warn allow-lists: finetune_compute_allow_list no place answered" in text
    assert "tag finetune_compute_allow_list" in text and "finetune-recommended-sku" in text
    (stop,) = failing(lines)  # said once: no size choice is attempted after it
    assert "the registry returned no allow-lists for Phi-4-mini-instruct:1" in stop
    assert "pass --compute-sku and --instance-type" in stop


def test_sizes_chosen_explicitly_pass_with_the_note(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    fake.registry.metadata_key = None
    sizes = (
        "--compute-sku",
        "Standard_NC24ads_A100_v4",
        "--instance-type",
        "Standard_NC24ads_A100_v4",
    )
    code, lines = check(capsys, fake, *sizes)
    assert code == 0, lines
    assert "warn allow-lists: allow-lists unknown: sizes chosen explicitly" in lines


def test_system_metadata_under_the_camel_case_key_is_read(
    capsys: pytest.CaptureFixture[str], fake: FakeAzureML
) -> None:
    fake.registry.metadata_key = "systemMetadata"
    code, lines = check(capsys, fake, "--model-name", "Phi-4")
    assert code == 0, lines
    assert any("finetune_compute_allow_list from systemMetadata" in line for line in lines)
