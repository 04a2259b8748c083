"""The plugin itself, driven through pytester with an in-memory fake backend.

What matters to a user: options and their provenance in the header, skip vs. fail without
Azure settings, and that every resource the chain creates is deleted exactly once, whatever
happens (a failing fixture, a failing teardown, bad input). The same sessions in real
subprocesses (pytest-xdist workers, signals) are in tests/faults/test_plugin_processes.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    result.stdout.fnmatch_lines(
        [
            "*harness verdict: PASSED: run *",
            "why: 13 workflow tests passed",
            "skipped test_no_figure_regressed_against_the_compared_run: no --compare-to*",
            "figure * value * better",
            "eval_loss_after * 1.2 * lower is better",
            "report: */report.html",
        ]
    )
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
    # the loss after got worse, and so did what fine-tuning did (2.1 - 1.2 -> 2.1 - 1.8)
    assert report(pytester)["comparison"]["regressed"] == [
        "eval_loss_after",
        "eval_loss_improvement",
    ]
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


def test_a_run_that_validated_nothing_is_not_validated_whatever_else_passed(
    pytester: pytest.Pytester, events: Path
) -> None:
    """Azure without settings skips every workflow test; an e2e-marked test that does not
    use the workflow passes. The run is amber, with pytest's own exit status (0)."""
    pytester.makepyfile(
        test_unrelated="import pytest\n\n@pytest.mark.e2e\ndef test_other():\n    pass\n"
    )
    result = run(pytester, "--backend", "azure", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1, skipped=SUITE)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*harness verdict: NOT VALIDATED: run *, model not reached on azure*",
            "why: every workflow test was skipped: --backend azure needs*",
        ]
    )
    written = report(pytester)
    assert written["run"]["verdict"] == "not validated"
    assert written["run"]["failure_class"] is None
    assert (
        '<property name="harness_verdict" value="not validated"'
        in (pytester.path / "junit.xml").read_text()
    )
    summary = (pytester.path / "harness-report" / "report.md").read_text()
    assert summary.startswith("# NOT VALIDATED: run")
    assert "<details><summary>Skipped tests (14)</summary>" in summary


def test_scoring_with_no_answer_fails_its_samples_and_their_latency_is_not_measured(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = pytester.path / "history"
    run(pytester, f"--history={history}").assert_outcomes(passed=SUITE - 1, skipped=1)
    monkeypatch.setenv("HARNESS_FAKE_FAIL", "invoke_timeout")
    result = run(pytester, f"--history={history}", "--compare-to=last")
    written = report(pytester)
    assert [(s["status"], s["latency_s"]) for s in written["samples"]] == [("error", None)] * 3
    assert written["figures"]["scoring_latency_p95_s"]["value"] is None
    rows = {r["figure"]: r for r in written["comparison"]["rows"]}
    assert rows["scoring_latency_p95_s"]["status"] == "not compared"
    assert "improved" not in {r["status"] for r in rows.values()}
    assert written["run"]["verdict"] == "failed"
    assert written["run"]["failure_class"] == "service"
    result.stdout.fnmatch_lines(
        [
            "*harness verdict: FAILED (service): run *",
            "why: test_scoring_returns_assistant_text_within_the_timeout: AssertionError: "
            "sample 0: HTTP 0, '': no answer within the scoring timeout of 0.01 s",
            "FAILED test_scoring_returns_assistant_text_within_the_timeout ?its own check; "
            "service?: AssertionError*",
            "scoring_latency_p95_s * n/a * lower is better",
        ]
    )


def test_a_failed_step_is_named_under_the_headline_and_annotated_for_github(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_FAKE_FAIL", "deploy")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run(pytester, "--junitxml", "junit.xml")
    written = report(pytester)
    assert written["run"]["verdict_reason"].startswith(
        "test_deployment_takes_all_traffic [step deployment]: "
        "harness.errors.HarnessError: fake failure in deploy"
    )
    assert written["run"]["failure_class"] == "harness"
    result.stdout.fnmatch_lines(
        [
            "::error file=e2e/test_acceptance_copy.py,title=e2e/test_acceptance_copy.py%3A%3A"
            "test_deployment_takes_all_traffic (harness)::[step deployment] "
            "harness.errors.HarnessError: fake failure in deploy"
        ]
    )
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="harness_failure_class" value="harness"' in junit
    assert 'name="harness_verdict_reason" value="test_deployment_takes_all_traffic' in junit


def test_a_failed_quality_gate_is_a_model_quality_failure(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_FAKE_EVAL_LOSS", "2.5")  # worse than the 2.1 before training
    result = run(pytester, "-k", "eval_loss or scoring_returns")
    result.assert_outcomes(passed=1, failed=1)
    written = report(pytester)
    assert written["run"]["failure_class"] == "model quality"
    result.stdout.fnmatch_lines(["*harness verdict: FAILED (model quality): run *"])


def test_the_suite_stops_at_once_when_its_configuration_was_not_loaded(
    pytester: pytest.Pytester, events: Path
) -> None:
    """The nightly's `--history DIR` (a space, not `=`): pytest takes DIR for a test path and
    its rootdir from it, and loads no pytest.ini (pytest-dev/pytest#8846)."""
    (pytester.path / "tox.ini").unlink()
    history = pytester.mkdir("history")
    result = run(pytester, "--history", str(history), "e2e")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*runs without its configuration: pytest loaded no pytest.ini*"
            f"Cause: a path-valued option given without `=` (`--history {history}`)*"
            f"Fix: write --history={history}*"
        ]
    )
    assert created(events) == {}
    assert not (pytester.path / "harness-report").exists()


def test_a_misspelled_setting_in_the_environment_is_named_with_the_right_one(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_JOB_TIMEOUT", "60")
    monkeypatch.setenv("HARNESS_NIGHTLY_OWNER", "team-a")  # like no setting: left alone
    result = run(pytester, "-k", "test_training_data_is_valid")
    result.stdout.fnmatch_lines(
        ["*HARNESS_JOB_TIMEOUT is not a harness setting*did you mean HARNESS_JOB_TIMEOUT_S?*"]
    )
    assert "HARNESS_NIGHTLY_OWNER" not in result.stdout.str()


def test_an_interrupted_run_reports_the_teardown_pytest_does_after_it(
    pytester: pytest.Pytester, events: Path
) -> None:
    """Ctrl-C after the suite: pytest tears the session fixtures down after the run's report
    was first written; the report is written again, after the last deletion."""
    pytester.makepyfile(
        test_zz_interrupt="def test_ctrl_c(harness_config):\n    raise KeyboardInterrupt\n"
    )
    result = pytester.runpytest("-p", "harness.plugin", "--tb=line", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    written = report(pytester)
    assert written["run"]["verdict"] == "interrupted"
    assert {t["resource"] for t in written["teardown"]} >= {"endpoint", "job", "compute"}
    page = (pytester.path / "harness-report" / "report.html").read_text()
    assert "INTERRUPTED" in page and "No teardown was recorded" not in page


def test_a_full_report_directory_is_an_error_that_keeps_the_verdict(
    pytester: pytest.Pytester, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import harness.report.write

    def full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.report.write, "write_atomic", full)
    monkeypatch.setattr(harness.report.write, "write_json", full)
    history = pytester.path / "history"
    result = run(pytester, "--history", str(history))
    result.stdout.fnmatch_lines(
        [
            "*harness verdict: PASSED*",
            "report: not written (see below)",
            "harness: the run's report could not be written to */harness-report (No space left "
            "on device); the verdict above stands; free space or pass --report-dir=DIR *",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the tests passed; the record did not
    assert len(list(history.rglob("*.json"))) == 1  # the history still has the run
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
