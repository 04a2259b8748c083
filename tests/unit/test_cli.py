"""``python -m harness plan`` and ``sweep``, in-process through ``main(argv)``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import harness.backends
from harness import naming
from harness.__main__ import main, parse_duration_h
from harness.backends.base import OwnedResource, ResourceKind
from harness.config import HarnessConfig
from harness.errors import CleanupError, ConfigError
from tests.support import DATA

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The developer's HARNESS_* / AZURE_* settings must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith(("HARNESS_", "AZURE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "plan", *argv)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert "Traceback" not in err
    return err


def write_card(tmp_path: Path, **fields: Any) -> str:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(fields))
    return str(path)


def test_plan_defaults_to_shipped_phi3(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped card is Phi-3-mini 15 as the registry returns it today: lists in system
    metadata (JSON text), archived, past its fine-tune retirement: a warning by default."""
    result = plan(capsys)
    assert result["model"] == {
        "name": "Phi-3-mini-4k-instruct",
        "version": "15",
        "id": "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15",
    }
    assert result["model_sources"] == {
        "finetune_compute_allow_list": "system_metadata",
        "inference_compute_allow_list": "system_metadata",
        "task": "system_metadata",
    }
    assert result["model_deprecation"].startswith("archived; finetune deprecation 2025-06-30")
    assert "passed its fine-tune retirement date 2025-08-30" in result["warnings"][0]
    assert result["compute_sku"] == "Standard_NC24ads_A100_v4"
    # NC6s_v3..NC24s_v3 are retired; ND40rs_v2 is next in list order but has eight GPUs
    assert result["instance_type"] == "Standard_NC24ads_A100_v4"
    assert "fewest GPUs (1 GPU" in result["instance_type_reason"]
    assert "fewest GPUs (1 GPU" in result["compute_sku_reason"]
    assert result["model_registry"] == result["component_registry"] == "azureml"
    assert result["allow_lists"] == (
        "finetune_compute_allow_list from system_metadata; "
        "inference_compute_allow_list from system_metadata"
    )
    assert result["region_checked"] is False
    assert result["gpus_per_node"] == 1
    assert result["dropped_parameters"] == {"learning_rate_min": 5e-07, "learning_rate_max": 5e-05}
    assert result["finetune_parameters"]["deepspeed_stage"] == "2"
    assert result["finetune_parameters"]["precision"] == "16"
    assert result["display_name"] == (
        "Phi-3-mini-4k-instruct-ultrachat-bs1-cosine-ds2-lora-save_limit1-seqlen-1"
    )
    run_id = result["run_id"]
    for key in ("endpoint_name", "deployment_name"):
        assert run_id in result[key]
        assert naming.NAME_PATTERN.fullmatch(result[key]) and len(result[key]) <= 32
    assert result["tags"][naming.TAG_RUN_ID] == run_id
    assert naming.is_owned(result["tags"]) and not naming.is_expired(result["tags"])


def test_plan_options(capsys: pytest.CaptureFixture[str]) -> None:
    result = plan(
        capsys,
        "--run-id",
        "hfixed01",
        "--compute-sku",
        "standard_nd96asr_v4",
        "--gpus-per-node",
        "8",
        "--instance-type",
        "standard_nc48ads_a100_v4",
        "--finetune-param",
        "num_train_epochs=2",
        "--finetune-param",
        "apply_lora=false",
        "--resource-ttl",
        "2",
    )
    assert result["run_id"] == "hfixed01"
    assert result["endpoint_name"].startswith("ep-hfixed01-")
    assert result["compute_sku"] == "standard_nd96asr_v4"
    assert result["instance_type"] == "standard_nc48ads_a100_v4"
    assert result["finetune_parameters"]["num_train_epochs"] == 2
    assert result["display_name"].startswith(
        "Phi-3-mini-4k-instruct-ultrachat-bs8-cosine-ds2-nolora-"
    )
    created = datetime.fromisoformat(result["tags"][naming.TAG_CREATED])
    expires = datetime.fromisoformat(result["tags"][naming.TAG_EXPIRES])
    assert expires - created == timedelta(hours=2)


def test_plan_reads_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_COMPUTE_SKU", "Standard_ND40rs_v2")
    err = refused(capsys, "plan")
    assert "Standard_ND40rs_v2 is not allowed for fine-tuning" in err


def test_plan_model_card_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tags = json.loads((DATA / "phi-3-mini-4k-instruct.tags.json").read_text())["tags"]
    card = write_card(tmp_path, name="Phi-3-mini-4k-instruct", version="15", tags=tags)
    result = plan(capsys, "--model-card", card)
    assert result["model"]["version"] == "15"
    assert result["model"]["id"].endswith("/Phi-3-mini-4k-instruct/versions/15")
    card = write_card(
        tmp_path,
        name="X",
        version="2",
        id="azureml:X:2",
        tags={
            "finetune_compute_allow_list": ["Standard_A"],
            "inference_compute_allow_list": "['I']",
        },
    )
    result = plan(capsys, "--model-card", card)
    assert result["model"] == {"name": "X", "version": "2", "id": "azureml:X:2"}
    assert (result["compute_sku"], result["instance_type"]) == ("Standard_A", "I")
    assert result["dropped_parameters"] == {}
    assert result["finetune_parameters"]["deepspeed_stage"] == "2"


def test_plan_without_allow_lists(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    card = write_card(tmp_path, name="Bare", tags={})
    assert "--compute-sku" in refused(capsys, "plan", "--model-card", card)
    assert "no allow-lists for Bare" in refused(
        capsys, "plan", "--model-card", card, "--compute-sku", "Standard_NC6"
    )
    assert "retired on 2023-09-06" in refused(
        capsys,
        "plan",
        "--model-card",
        card,
        "--compute-sku",
        "Standard_NC6",
        "--instance-type",
        "Standard_NC24ads_A100_v4",
    )
    assert "--instance-type" in refused(
        capsys, "plan", "--model-card", card, "--compute-sku", "Standard_NC24ads_A100_v4"
    )
    result = plan(
        capsys,
        "--model-card",
        card,
        "--compute-sku",
        "Standard_NC24ads_A100_v4",
        "--instance-type",
        "Standard_NC24ads_A100_v4",
    )
    assert result["model"]["version"] == "latest"
    assert result["warnings"] == [] and result["model_sources"]["task"] is None
    assert result["allow_lists"] == "allow-lists unknown: sizes chosen explicitly"
    assert "chosen explicitly (--compute-sku)" in result["compute_sku_reason"]


def write_sizes(tmp_path: Path, sizes: Any) -> str:
    path = tmp_path / f"sizes-{len(list(tmp_path.glob('sizes-*')))}.json"
    path.write_text(json.dumps(sizes))
    return str(path)


def test_plan_takes_the_regions_sizes_from_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same choice the run makes against list_sizes(), offline: the list as the SDK's
    VmSize objects dump, or the REST answer."""
    sdk = write_sizes(
        tmp_path,
        [
            {"name": "Standard_NC48ads_A100_v4", "gpus": 2, "v_cp_us": 48},
            {"name": "Standard_NC6s_v3", "gpus": 1},
        ],
    )
    result = plan(capsys, "--workspace-sizes", sdk)
    assert (result["compute_sku"], result["instance_type"], result["gpus_per_node"]) == (
        "Standard_NC48ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        2,
    )
    assert result["region_checked"] is True
    assert "display_name" in result and "-bs2-" in result["display_name"]
    rest = write_sizes(
        tmp_path, {"value": [{"name": "Standard_ND96asr_v4", "gpus": 8, "vCPUs": 96}]}
    )
    assert plan(capsys, "--workspace-sizes", rest)["gpus_per_node"] == 8
    err = refused(
        capsys, "plan", "--workspace-sizes", sdk, "--compute-sku", "Standard_NC24ads_A100_v4"
    )
    assert "not offered in the workspace's region" in err
    assert "allowed and usable: Standard_NC48ads_A100_v4" in err
    assert "must be a list of objects" in refused(
        capsys, "plan", "--workspace-sizes", write_sizes(tmp_path, {"sizes": 1})
    )


def test_plan_refuses_a_retired_model_when_strict(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "plan", "--strict-deprecation")
    assert "passed its fine-tune retirement date 2025-08-30" in err
    assert "drop --strict-deprecation" in err


def test_plan_reads_the_older_tag_form_card(capsys: pytest.CaptureFixture[str]) -> None:
    shipped_tags = ROOT / "harness" / "resources" / "phi-3-mini-4k-instruct.tags.json"
    result = plan(capsys, "--model-card", str(shipped_tags))
    assert result["model_sources"]["finetune_compute_allow_list"] == "tags"
    assert result["warnings"] == []


def test_plan_drops_unknown_parameters_when_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    result = plan(capsys, "--finetune-param", "sed=1", "--allow-dropped-params")
    assert result["dropped_parameters"]["sed"] == "1"


def test_plan_custom_component_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"inputs": {"learning_rate": {"type": "number"}}}))
    result = plan(capsys, "--component-inputs", str(path))
    assert result["finetune_parameters"] == {"learning_rate": 5e-06}
    assert "num_train_epochs" in result["dropped_parameters"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["plan", "--compute-sku", "Standard_ND40rs_v2"], "allowed: Standard_NC24ads_A100_v4"),
        (["plan", "--instance-type", "Standard_DS3_v2"], "--instance-type"),
        (["plan", "--instance-type", "Standard_NC6s_v3"], "retired on 2025-09-30"),
        (["check", "--compute-name", "gpu-1"], "not a valid Azure compute name"),
        (["plan", "--workspace-sizes", "/nonexistent/sizes.json"], "cannot read workspace sizes"),
        (["plan", "--finetune-param", "deepspeed_stage=4"], "one of 2, 3"),
        (["plan", "--finetune-param", "train_file_path=x.jsonl"], "wires itself"),
        (["plan", "--finetune-param", "lora_dropout=1"], "below 1"),
        (["plan", "--finetune-param", "sed=1"], "did you mean seed?"),
        (["plan", "--finetune-param", "nonsense"], "key=value"),
        (["plan", "--gpus-per-node", "0"], "--gpus-per-node"),
        (["plan", "--gpus-per-node", "two"], "invalid int value"),
        (["plan", "--no-such-option"], "unrecognized arguments"),
        (["plan", "--backend", "gcp"], "unknown backend"),
        (["plan", "--model-card", "/nonexistent/card.json"], "cannot read model card"),
        (["plan", "--component-inputs", "/nonexistent/inputs.json"], "cannot read component"),
        ([], "required"),
    ],
)
def test_plan_refusals(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    assert fragment in refused(capsys, *argv)


def test_plan_bad_card_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad_tag = write_card(tmp_path, name="M", tags={"finetune_compute_allow_list": "['a',"})
    err = refused(capsys, "plan", "--model-card", bad_tag)
    assert "finetune_compute_allow_list" in err and "\"['a',\"" in err
    assert "neither 'tags' nor 'system_metadata'" in refused(
        capsys, "plan", "--model-card", write_card(tmp_path, name="M")
    )
    assert "'name'" in refused(capsys, "plan", "--model-card", write_card(tmp_path, tags={}))


def test_module_exits_2_without_traceback_on_bad_sku() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "AZURE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "plan", "--compute-sku", "Standard_ND40rs_v2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: VM size Standard_ND40rs_v2 is not allowed")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "text, hours",
    [("6h", 6.0), ("30m", 0.5), ("2d", 48.0), ("90s", 0.025), ("1.5", 1.5), (" 3H ", 3.0)],
)
def test_parse_duration(text: str, hours: float) -> None:
    assert parse_duration_h(text) == pytest.approx(hours)


@pytest.mark.parametrize("text", ["", "h", "-1h", "6w", "six hours"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="--older-than"):
        parse_duration_h(text)


# ---- sweep ----------------------------------------------------------------------------------

NOW = datetime.now(UTC)


def owned(
    name: str, created_h_ago: float, ttl_h: float, kind: ResourceKind = ResourceKind.ENDPOINT
) -> OwnedResource:
    tags = naming.ownership_tags(f"r{name}", ttl_h, now=NOW - timedelta(hours=created_h_ago))
    return OwnedResource(kind=kind, name=name, tags=tags)


class FakeBackend:
    name = "fake"

    def __init__(self, resources: Sequence[OwnedResource], failing: set[str]) -> None:
        self.resources = list(resources)
        self.failing = failing
        self.deleted: list[str] = []
        self.attempted: list[str] = []
        self.closed = False

    def list_owned_resources(self) -> list[OwnedResource]:
        return self.resources

    def _delete(self, name: str, timeout_s: float) -> None:
        self.attempted.append(name)
        if name in self.failing:
            raise CleanupError(f"cannot delete {name}: still in use")
        self.deleted.append(name)

    delete_compute = delete_job = delete_model = delete_endpoint = _delete

    def close(self, stop_owned: bool) -> None:
        self.closed = True


RESOURCES = [
    owned("expired", created_h_ago=8, ttl_h=6),
    owned("fresh", created_h_ago=1, ttl_h=6, kind=ResourceKind.JOB),
    owned("old-long-ttl", created_h_ago=10, ttl_h=48, kind=ResourceKind.COMPUTE),
    OwnedResource(kind=ResourceKind.ENDPOINT, name="untagged", tags={}),
    OwnedResource(
        kind=ResourceKind.ENDPOINT, name="foreign", tags={"harness-expires": "2000-01-01T00:00:00"}
    ),
]


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake backend behind ``create_backend``; records the config it was made from."""
    made: dict[str, Any] = {"failing": set()}

    def create(config: HarnessConfig, **_: object) -> FakeBackend:
        backend = FakeBackend(RESOURCES, made["failing"])
        made.update(config=config, backend=backend)
        return backend

    monkeypatch.setattr(harness.backends, "create_backend", create)
    return made


def test_sweep_deletes_only_owned_expired(
    capsys: pytest.CaptureFixture[str], fake: dict[str, Any]
) -> None:
    code, out, _ = run(capsys, "sweep")
    assert code == 0
    backend = fake["backend"]
    assert backend.deleted == ["expired"]
    assert backend.closed
    assert "deleting endpoint expired (run rexpired" in out
    assert fake["config"].backend == "local"


def test_sweep_older_than(capsys: pytest.CaptureFixture[str], fake: dict[str, Any]) -> None:
    code, out, _ = run(capsys, "sweep", "--older-than", "6h", "--backend", "azure")
    assert code == 0
    assert fake["backend"].deleted == ["expired", "old-long-ttl"]
    assert fake["config"].backend == "azure"
    assert "untagged" not in out and "foreign" not in out


def test_sweep_dry_run(capsys: pytest.CaptureFixture[str], fake: dict[str, Any]) -> None:
    code, out, _ = run(capsys, "sweep", "--dry-run", "--older-than", "30m")
    assert code == 0
    assert fake["backend"].attempted == []
    assert "would delete endpoint expired" in out
    assert "would delete job fresh" in out
    assert "would delete compute old-long-ttl" in out
    assert "untagged" not in out


def test_sweep_leaves_the_callers_logging_as_it_found_it(
    capsys: pytest.CaptureFixture[str], fake: dict[str, Any]
) -> None:
    """In-process callers (tests, notebooks) keep their logging: a handler left behind would
    write every later harness line to a stream that has since closed ("--- Logging error ---")."""
    logger = logging.getLogger("harness")
    handlers, level = list(logger.handlers), logger.level
    assert run(capsys, "sweep")[0] == 0
    assert logger.handlers == handlers
    assert logger.level == level


def test_sweep_tries_all_then_fails(
    capsys: pytest.CaptureFixture[str], fake: dict[str, Any]
) -> None:
    fake["failing"].add("expired")
    code, _, err = run(capsys, "sweep", "--older-than", "30m")
    assert code == 1
    backend = fake["backend"]
    assert backend.attempted == ["expired", "fresh", "old-long-ttl"]
    assert backend.deleted == ["fresh", "old-long-ttl"]
    assert "could not delete endpoint expired" in err and "still in use" in err
    assert backend.closed


def test_sweep_removes_the_model_caches_stale_builds(
    capsys: pytest.CaptureFixture[str], fake: dict[str, Any], tmp_path: Path
) -> None:
    """Builds of another recipe go once unused for the resources' lifetime (6 h); today's stays."""
    from harness.backends.local.models import DEFAULT_MODEL_NAME, default_recipe_key

    cache = tmp_path / "llm-finetune-harness" / "models"
    today = cache / f"{DEFAULT_MODEL_NAME}-{default_recipe_key()}"
    stale, recent = cache / f"{DEFAULT_MODEL_NAME}-0ld0ld0ld0ld0ld0", cache / "x-recent00recent0"
    for entry in (today, stale, recent):
        entry.mkdir(parents=True)
    week_ago = datetime.now().timestamp() - 7 * 24 * 3600
    for entry in (today, stale):
        os.utime(entry, (week_ago, week_ago))
    code, out, _ = run(capsys, "sweep", "--dry-run")
    assert code == 0 and f"would remove the model cache's stale build {stale}" in out
    assert stale.is_dir()
    code, out, _ = run(capsys, "sweep")
    assert code == 0 and f"removed the model cache's stale build {stale}" in out
    assert sorted(cache.iterdir()) == [today, cache / "locks", recent]
    assert fake["config"].model_cache_dir == cache


def test_model_cache_prints_the_path_and_key_for_a_ci_cache(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from harness.backends.local.models import DEFAULT_MODEL_NAME, default_recipe_key

    code, out, _ = run(capsys, "model-cache", "--model-cache", str(tmp_path / "models"))
    assert code == 0
    assert out.splitlines() == [
        f"path={tmp_path / 'models'}",
        f"key={DEFAULT_MODEL_NAME}-{default_recipe_key()}",
    ]


def test_sweep_bad_duration(capsys: pytest.CaptureFixture[str], fake: dict[str, Any]) -> None:
    assert "--older-than" in refused(capsys, "sweep", "--older-than", "soon")
    assert "backend" not in fake


def test_sweep_refuses_a_workspace_that_is_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    err = refused(capsys, "sweep", "--workspace", str(afile))
    assert f"{afile} cannot be used" in err and "--workspace" in err


def test_plan_describes_the_pipeline_route_on_azure(capsys: pytest.CaptureFixture[str]) -> None:
    route = plan(capsys, "--backend", "azure")["finetune_route"]
    assert route["route"] == "pipeline" and route["api_version"] == "2024-01-01-preview"
    assert route["component"] == "chat_completion_pipeline (label latest)"
    assert route["model_registry"] == route["component_registry"] == "azureml"


def test_plan_of_the_finetuning_job_route(capsys: pytest.CaptureFixture[str]) -> None:
    result = plan(capsys, "--backend", "azure", "--finetune-route", "finetuning-job")
    route = result["finetune_route"]
    assert (route["job_type"], route["api_version"]) == ("FineTuning", "2024-10-01-preview")
    assert route["compute"].startswith("managed")
    assert (
        route["model"] == "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15"
    )
    assert result["compute_sku"] != "serverless" and result["gpus_per_node"] >= 1
    assert "compute_finetune" not in result["finetune_parameters"]


def test_plan_of_the_serverless_route_names_the_regions(capsys: pytest.CaptureFixture[str]) -> None:
    result = plan(
        capsys, "--backend", "azure", "--finetune-route", "finetuning-job", "--serverless"
    )
    route = result["finetune_route"]
    assert route["route"] == "finetuning-job-serverless" and route["compute"] == "serverless"
    assert route["serverless_region"]["regions"] == ["eastus2"]
    assert route["serverless_region"]["supported"] is None, "offline: the region is unknown"
    assert result["compute_sku"] == "serverless"


def test_plan_refuses_an_unknown_hyperparameter_of_the_route(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refused(
        capsys,
        "plan",
        "--backend",
        "azure",
        "--finetune-route",
        "finetuning-job",
        "--finetune-param",
        "num_train_epoch=2",
    )
    assert "did you mean num_train_epochs" in err


def test_the_plan_is_made_without_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """harness.plan takes a HarnessConfig: a notebook or a CI script plans without argparse."""
    from harness import config
    from harness import plan as planning

    cfg = config.resolve(cli={"run_id": "abc123", "backend": "azure"}, env={})
    made = planning.plan(cfg, gpus_per_node=2)
    command = plan(capsys, "--run-id=abc123", "--backend=azure", "--gpus-per-node=2")
    fresh = {"endpoint_name", "deployment_name", "tags"}  # a random suffix, the creation time
    assert made.keys() == command.keys()
    assert {k: v for k, v in made.items() if k not in fresh} == {
        k: v for k, v in command.items() if k not in fresh
    }
    assert made["gpus_per_node"] == 2 and made["run_id"] == "abc123"


def test_plan_for_another_model_offline_says_a_model_card_file_is_needed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refused(capsys, "plan", "--model-name=Phi-4")
    assert "no model card of Phi-4:latest offline" in err
    assert "--model-card=FILE" in err and "--backend azure" in err
    assert plan(capsys, "--model-version=15")["model"]["version"] == "15"  # the shipped card's


def test_plan_with_azure_reads_the_named_models_card_from_the_registry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import harness.backends
    from tests.support.fake_backend import FakeBackend

    fake = FakeBackend(tmp_path / "events.jsonl")
    monkeypatch.setattr(harness.backends, "create_backend", lambda cfg, **_: fake)
    result = plan(capsys, "--backend=azure", "--model-name=Phi-tiny", "--model-version=1")
    assert result["model"]["name"] == "Phi-tiny" and result["compute_sku"] == "Fake_GPU_1"
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e for e in events if e["event"] == "create"] == []  # read-only


def sweep_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, "sweep", "--json", *argv)
    return code, json.loads(out)  # stdout is the JSON object and nothing else


def test_sweep_json_says_what_was_deleted_and_kept_and_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """On the local backend: a killed run's expired job goes, a fresh one stays, each with
    its reason; a dry run after it lists only what is left."""
    from harness.backends.local.registry import TAG_KIND
    from harness.backends.local.workspace import Workspace

    ws = Workspace.at(tmp_path / "ws")
    client = ws.client()
    experiment = ws.experiment_id("chat_completion_tiny")
    ran = {}
    for run_id, hours_ago in (("hexpired1", 8.0), ("hfresh01", 1.0)):
        tags = naming.ownership_tags(run_id, 6.0, now=NOW - timedelta(hours=hours_ago))
        ran[run_id] = client.create_run(experiment, tags={**tags, TAG_KIND: "job"}).info.run_id
    workspace = f"--workspace={ws.root}"
    code, found = sweep_json(capsys, workspace)
    assert code == 0
    assert found["dry_run"] is False and found["backend"] == "local" and found["clean"]
    by_run = {r["run_id"]: r for r in found["resources"]}
    assert by_run["hexpired1"]["action"] == "deleted"
    assert by_run["hexpired1"]["name"] == ran["hexpired1"] and by_run["hexpired1"]["kind"] == "job"
    assert by_run["hexpired1"]["reason"].startswith("expired at ")
    assert (by_run["hfresh01"]["action"], by_run["hfresh01"]["reason"]) == ("kept", "not expired")
    assert found["counts"] == {"deleted": 1, "would delete": 0, "failed": 0, "kept": 1}
    assert found["errors"] == [] and found["model_cache_builds"] == []
    code, left = sweep_json(capsys, workspace, "--dry-run", "--older-than=30m")
    assert code == 0 and left["dry_run"] is True and left["older_than_h"] == 0.5
    assert [(r["run_id"], r["action"]) for r in left["resources"]] == [("hfresh01", "would delete")]
    assert "longer ago than --older-than" in left["resources"][0]["reason"]


def test_sweeping_a_workspace_that_never_ran_creates_no_mlflow_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Nothing ran or was registered where the store does not exist: the sweep opens no
    MLflow (seconds) and leaves the workspace as it was, the background warm-up included."""
    workspace = tmp_path / "ws"
    code, found = sweep_json(capsys, f"--workspace={workspace}")
    for thread in threading.enumerate():
        if thread.name == "harness-open-mlflow":
            thread.join(timeout=60)  # a warm-up that was started would create the store
    assert code == 0 and found["resources"] == [] and found["clean"]
    assert not (workspace / "mlflow.db").exists()


def test_listing_versions_of_a_workspace_that_never_ran_creates_no_mlflow_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Nothing was registered where the store does not exist: ``versions`` says so without
    creating it (a second of MLflow's migrations, and a database the user never asked for)."""
    workspace = tmp_path / "ws"
    code = main(["versions", f"--workspace={workspace}", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == []
    assert not (workspace / "mlflow.db").exists()


def test_sweep_json_lists_each_failure_and_exits_1(
    capsys: pytest.CaptureFixture[str], fake: dict[str, Any]
) -> None:
    fake["failing"].add("expired")
    code, out, err = run(capsys, "sweep", "--json")
    assert code == 1
    found = json.loads(out)
    assert found["clean"] is False
    assert found["errors"] == [
        {
            "kind": "endpoint",
            "name": "expired",
            "error": "could not delete endpoint expired: CleanupError: cannot delete expired: "
            "still in use",
        }
    ]
    actions = {r["name"]: (r["action"], r["reason"]) for r in found["resources"]}
    assert actions["expired"][0] == "failed"
    assert actions["untagged"] == ("kept", "not the harness's: no harness-run-id tag")
    assert actions["foreign"] == ("kept", "not the harness's: no harness-run-id tag")
    assert actions["fresh"] == actions["old-long-ttl"] == ("kept", "not expired")
    assert "deleting" not in err and "error:" not in err  # the JSON says it all


@pytest.mark.parametrize(
    "argv, code",
    [
        (["plan"], 141),  # more than a pipe's buffer: the write itself fails
        (["model-cache"], 141),  # two short lines: the flush at exit fails
        (["sweep", "--json"], 141),
        (["plan", "--help"], 0),  # argparse ignores a failed write of the help
    ],
)
def test_a_reader_that_went_away_ends_the_command_quietly(
    tmp_path: Path, argv: list[str], code: int
) -> None:
    """`python -m harness ... | head -1`, with head gone before the first write: no BrokenPipe
    traceback, no "Exception ignored" at exit, and the shell's 128 + SIGPIPE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "AZURE_"))}
    env.update(HARNESS_WORKSPACE=str(tmp_path / "ws"), XDG_CACHE_HOME=str(tmp_path))
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *argv],
            cwd=ROOT,
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert "BrokenPipe" not in proc.stderr
