"""The plugin itself, driven through pytester with an in-memory fake backend.

What matters to a user: options and their provenance in the header, skip vs. fail without
Azure settings, and that every resource the chain creates is deleted exactly once, whatever
happens (a failing fixture, a failing teardown, bad input). The same sessions in real
subprocesses (pytest-xdist workers, signals) are in tests/faults/test_plugin_processes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_backend import read_events
from tests.support.plugin_project import (
    SUITE,
    balance,
    created,
    isolate,
    leftovers,
    make_project,
    report,
    run,
)


@pytest.fixture(autouse=True)
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return isolate(monkeypatch, tmp_path_factory)


@pytest.fixture
def events(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    report_modules_loaded: None,
    plots_drawn_elsewhere: None,
) -> Path:
    return make_project(pytester, monkeypatch)


def test_header_shows_each_value_and_its_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_MODEL_NAME", "Phi-4")
    pytester.makeini("[pytest]\nharness_scoring_samples = 7\n")
    result = run(pytester, "--dataset-percent", "12.5", "--finetune-param", "seed=3")
    result.stdout.fnmatch_lines(
        [
            "harness: model_name=Phi-4 (env HARNESS_MODEL_NAME)",
            "harness: dataset_percent=12.5 (option --dataset-percent)",
            "harness: finetune_params=seed=3 (option --finetune-param)",
            "harness: run_id=* (generated)",
            "harness: scoring_samples=7 (ini harness_scoring_samples)",
            "harness defaults (local backend): backend=local, *",
        ]
    )


@pytest.mark.parametrize(
    "args, named",
    [
        (["--dataset-percent", "0"], "--dataset-percent"),
        (["--backend", "gcp"], "--backend"),
        (["--job-timeout", "-5"], "--job-timeout"),
        (["--finetune-param", "learning_rate"], "--finetune-param"),
    ],
)
def test_impossible_values_are_refused_at_startup(
    pytester: pytest.Pytester, args: list[str], named: str
) -> None:
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{named}*"])


def test_azure_without_settings_skips_with_the_reason(
    pytester: pytest.Pytester, events: Path
) -> None:
    result = run(pytester, "--backend", "azure", "-rs")
    result.assert_outcomes(skipped=SUITE)
    result.stdout.fnmatch_lines(["*--backend azure needs*--azure-subscription-id*"])


def test_azure_without_settings_fails_when_live_is_required(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_REQUIRE_LIVE", "1")
    result = run(pytester, "--backend", "azure")
    result.assert_outcomes(errors=SUITE)
    result.stdout.fnmatch_lines(["*HARNESS_REQUIRE_LIVE is set*"])


def test_the_whole_chain_creates_and_deletes_each_resource_once(
    pytester: pytest.Pytester, events: Path, workspace: Path
) -> None:
    """...while the run is marked alive (the sweep skips it), and leaves no run directory."""
    pytester.makepyfile(
        test_alive="""
        from harness.lifecycle import run_is_alive
        def test_the_run_is_marked_alive(backend, harness_config):
            assert run_is_alive(harness_config.workspace_dir, harness_config.run_id)
    """
    )
    result = run(pytester)
    result.assert_outcomes(passed=SUITE, skipped=1)  # no --compare-to; one test added here
    assert leftovers(workspace) == []
    assert created(events) == {"compute": 1, "endpoint": 1, "job": 1, "model": 1, "deployment": 1}
    assert set(balance(events).values()) == {0}
    deletions = [e for e in read_events(events) if e["event"] == "delete"]
    assert {e["delete_timeout_s"] for e in deletions} == {10.0}  # --delete-timeout: no hurry


@pytest.mark.parametrize(
    "step",
    [
        "ensure_compute",
        "begin_create_endpoint",
        "submit_finetune",
        "wait_for_job",
        "register_model",
        "deploy",
        "invoke",
    ],
)
def test_a_failing_fixture_still_tears_everything_down(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    monkeypatch.setenv("HARNESS_FAKE_FAIL", step)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert created(events), "the failure came before anything was created"
    assert set(balance(events).values()) == {0}, read_events(events)


def test_a_teardown_failure_is_reported_without_hiding_results(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_FAKE_FAIL", "delete_endpoint")
    result = run(pytester)
    result.assert_outcomes(passed=SUITE - 1, skipped=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*harness teardown FAILED: could not delete endpoint*", "*python -m harness sweep*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("step, kept", [("invoke", "endpoint"), ("wait_for_job", "job")])
def test_keep_resources_keeps_what_a_failed_run_created(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch, step: str, kept: str
) -> None:
    """Including the failed job itself, whose own fixture fails before any test has."""
    monkeypatch.setenv("HARNESS_FAKE_FAIL", step)
    result = run(pytester, "--keep-resources")
    result.stdout.fnmatch_lines([f"*harness kept (--keep-resources): {kept}*"])
    assert balance(events)[kept] == 1


@pytest.mark.parametrize(
    "args, named",
    [
        (["--finetune-param", "lr_scheduler_type=bogus"], "lr_scheduler_type"),
        (["--finetune-param", "lerning_rate=1e-5"], "*did you mean learning_rate?*"),
        (["--finetune-param", "lora_r=0"], "lora_r='0'*at least 1"),
        (["--compute-sku", "Standard_NC6"], "Standard_NC6"),
        (["--instance-type", "Standard_DS1_v2"], "Standard_DS1_v2"),
        (["--scoring-samples", "9"], "--scoring-samples"),
    ],
)
def test_bad_input_fails_before_any_resource_is_created(
    pytester: pytest.Pytester, events: Path, args: list[str], named: str
) -> None:
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*{named}*"])
    assert created(events) == {}


def test_a_passing_run_writes_its_report_and_junit_properties(
    pytester: pytest.Pytester, events: Path
) -> None:
    result = run(pytester, "--junitxml", "junit.xml")
    result.stdout.fnmatch_lines(["*harness verdict: passed*", "report: */report.html"])
    written = report(pytester)
    assert written["run"]["verdict"] == "passed" and written["model"]["name"]
    assert {t["outcome"] for t in written["tests"]} == {"passed", "skipped"}
    assert [s["status"] for s in written["samples"]] == ["ok"] * 3
    assert written["figures"]["eval_loss_after"]["value"] == 1.2
    for name in ("loss.png", "timeline.png", "report.md", "report.html"):
        assert (pytester.path / "harness-report" / name).stat().st_size > 0
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="harness_verdict" value="passed"' in junit
    assert 'name="harness_eval_loss_after" value="1.2"' in junit
    assert "backend: done" in (pytester.path / "harness-report" / "harness.log").read_text()


def test_a_failing_run_reports_what_failed_and_what_it_reached(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_FAKE_FAIL", "deploy")
    run(pytester)
    written = report(pytester)
    assert written["run"]["verdict"] == "failed"
    stages = {s["name"]: s["outcome"] for s in written["stages"]}
    assert stages["deployment"] == "failed" and stages["finetune_job"] == "ok"
    assert {t["outcome"] for t in written["tests"]} >= {"passed", "error"}
    assert not written["samples"]


def test_a_session_that_never_uses_the_harness_writes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    run(pytester).assert_outcomes(passed=1)
    assert not (pytester.path / "harness-report").exists()


def test_the_second_run_fails_when_a_figure_regressed_against_the_first(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = pytester.path / "history"
    run(pytester, "--history", str(history)).assert_outcomes(passed=SUITE - 1, skipped=1)
    monkeypatch.setenv("HARNESS_FAKE_EVAL_LOSS", "1.8")  # 50 % worse than the first run's 1.2
    result = run(pytester, "--history", str(history), "--compare-to", "last")
    result.assert_outcomes(passed=SUITE - 1, failed=1)
    result.stdout.fnmatch_lines(["*REGRESSED: eval_loss_after*"])
    assert report(pytester)["comparison"]["regressed"] == ["eval_loss_after"]
    assert len(list(history.rglob("*.json"))) == 2  # a failed run is history too


def test_allowed_drops_let_a_misspelled_parameter_through(
    pytester: pytest.Pytester, events: Path
) -> None:
    result = run(
        pytester,
        "--allow-dropped-params",
        "--finetune-param",
        "lerning_rate=1e-5",
        "-k",
        "test_compute_is_allowed",
    )  # the preflight, then one resource
    result.assert_outcomes(passed=1)
    assert created(events) == {"compute": 1}


def test_a_workspace_that_is_a_file_is_a_usage_error_at_startup(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    afile = pytester.path / "not-a-directory"
    afile.write_text("x")
    monkeypatch.setenv("HARNESS_WORKSPACE", str(afile))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*env HARNESS_WORKSPACE*{afile} cannot be used*is a file*--workspace*"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert created(events) == {}
