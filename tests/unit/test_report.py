"""The run report: events from any process -> report.json, plots, Markdown, one HTML page."""

from __future__ import annotations

import json
import multiprocessing
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ReportError
from harness.progress import Progress
from harness.report import (
    FILES,
    Recorder,
    build_report,
    junit_properties,
    read_events,
    report_from_events,
    validate_report,
    write_report,
)
from harness.report.markdown import render_markdown
from harness.report.webpage import render_html
from tests.support.run_events import Clock, full_run, recorder

RUN = {"run_id": "r1", "backend": "local"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_report(tmp_path: Path, stop_after: int | None = None) -> dict[str, Any]:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    full_run(clock, rec, stop_after)
    return build_report(*read_events(rec.path))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """A whole passing run, written once for the module (plotting costs a few 100 ms)."""
    root = tmp_path_factory.mktemp("report")
    report = run_report(root)
    write_report(report, root / "out")
    return report, root / "out"


def test_a_full_run_has_every_section_and_its_figures(written: tuple[dict[str, Any], Path]) -> None:
    report, _ = written
    assert report["run"]["verdict"] == "passed" and report["not_reached"] == []
    figures = {name: f["value"] for name, f in report["figures"].items()}
    assert figures["eval_loss_before"] == 4.5 and figures["eval_loss_after"] == 3.25
    assert figures["job_duration_s"] == 1800.0  # Running at 4 s -> Completed at 1804 s
    assert figures["scoring_latency_p50_s"] == 1.5
    assert figures["scoring_latency_p95_s"] == pytest.approx(2.4)  # 0.5, 1.5, 2.5 interpolated
    assert figures["log_likelihood_finetuned"] == -2.1
    assert 0 < figures["answer_score_mean"] < 100
    assert [s["index"] for s in report["samples"]] == [0, 1, 2]
    assert report["model"]["allow_list_source"] == "tags"
    assert report["parameters"]["dropped"] == {"unknown_knob": 1}
    assert [s["status"] for s in report["job"]["statuses"]] == ["Running", "Completed"]


def test_billable_time_is_job_nodes_and_deployment_to_deletion(
    written: tuple[dict[str, Any], Path],
) -> None:
    report, _ = written
    # 1800 s on 2 nodes; the deployment from its creation (1805 s) to the endpoint's
    # deletion (2525 s) on one instance
    assert report["billable"] == {
        "finetune_node_hours": {"Local_CPU": 1.0},
        "endpoint_instance_hours": {"Local_CPU": 0.2},
    }


def test_stages_overlap_as_they_ran(written: tuple[dict[str, Any], Path]) -> None:
    stages = {s["name"]: s for s in written[0]["stages"]}
    assert (
        stages["endpoint"]["start_s"]
        < stages["finetune_job"]["start_s"]
        < stages["endpoint"]["end_s"]
    )
    assert stages["finetune_job"]["duration_s"] == 1800 and stages["teardown"]["outcome"] == "ok"


def test_every_file_is_written_and_the_report_fits_its_schema(
    written: tuple[dict[str, Any], Path],
) -> None:
    report, out = written
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert json.loads((out / "report.json").read_text()) == report
    validate_report(report)
    for name in ("loss.png", "timeline.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href"):
                self.links.append(value or "")
            if tag == "img" and name == "src":
                self.images.append(value or "")


def test_the_html_page_is_self_contained(written: tuple[dict[str, Any], Path]) -> None:
    page = (written[1] / "report.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert len(parser.images) == 2
    assert all(link.startswith("data:image/png;base64,") for link in parser.links)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "PASSED" in page and "The capital of France is Paris." in page


def test_the_markdown_summary_leads_with_the_verdict(written: tuple[dict[str, Any], Path]) -> None:
    summary = (written[1] / "report.md").read_text()
    assert summary.startswith("# PASSED: run h2511300000abcd")
    assert "| eval\\_loss\\_after | 3.25 |" in summary
    assert "ep-abc | deleted" in summary


def test_junit_properties_carry_the_verdict_and_the_figures(
    written: tuple[dict[str, Any], Path],
) -> None:
    properties = dict(junit_properties(written[0]))
    assert properties["harness_verdict"] == "passed"
    assert properties["harness_model"] == "Phi-3-tiny:3"
    assert properties["harness_eval_loss_after"] == "3.25"
    assert all(isinstance(v, str) for v in properties.values())


def test_a_failed_run_says_which_test_failed_and_why(tmp_path: Path) -> None:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    full_run(clock, rec)
    rec.record("test", nodeid="tests/e2e/test_workflow.py::test_keys", outcome="passed")
    rec.record(
        "test",
        nodeid="tests/e2e/test_workflow.py::test_keys",
        outcome="error",
        message="teardown: <b>boom</b> | pipe",
    )
    report = build_report(*read_events(rec.path))
    assert report["run"]["verdict"] == "failed"
    assert {t["nodeid"]: t["outcome"] for t in report["tests"]}[
        "tests/e2e/test_workflow.py::test_keys"
    ] == "error"
    summary = render_markdown(report)
    assert summary.startswith("# FAILED") and "&lt;b&gt;boom&lt;/b&gt; \\| pipe" in summary
    page = render_html(report, {})
    assert "<b>boom</b>" not in page and "&lt;b&gt;boom&lt;/b&gt; | pipe" in page


def test_a_skip_in_the_call_outranks_the_passed_setup(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "e.jsonl")
    for outcome in ("passed", "skipped", "passed"):
        rec.record("test", nodeid="t::x", outcome=outcome, duration_s=1.0)
    rec.record("test", nodeid="t::y", outcome="passed")
    rec.record("run_ended", exit_status=0)
    report = build_report(*read_events(rec.path))
    assert [(t["outcome"], t["duration_s"]) for t in report["tests"]] == [
        ("skipped", 3.0),
        ("passed", 0.0),
    ]
    assert report["run"]["verdict"] == "passed"


def test_a_run_killed_early_still_writes_every_file_and_says_what_was_missed(
    tmp_path: Path,
) -> None:
    report = report_from_events(_early(tmp_path), tmp_path / "out")
    assert report["run"]["verdict"] == "interrupted"
    assert "without recording its end" in report["run"]["reason"]
    assert {"job", "metrics", "samples", "tests", "teardown"} <= set(report["not_reached"])
    assert report["figures"]["eval_loss_after"]["value"] is None
    assert report["stages"][-1]["outcome"] == "unfinished"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)
    summary = (tmp_path / "out" / "report.md").read_text()
    assert summary.startswith("# INTERRUPTED") and "**Not reached:** fine-tune compute" in summary
    assert (tmp_path / "out" / "loss.png").read_bytes().startswith(PNG_MAGIC)


def _early(tmp_path: Path) -> Path:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    full_run(clock, rec, stop_after=5)  # killed while the endpoint was being created
    with rec.path.open("a") as events:
        events.write('{"kind": "job", "at": 17')  # the line a kill cut in half
    return rec.path


def test_a_cut_line_is_skipped_and_noted(tmp_path: Path) -> None:
    report = build_report(*read_events(_early(tmp_path)))
    assert report["events"] == {"count": 5, "unreadable_lines": 1}
    assert any("unreadable" in note["text"] for note in report["notes"])


def test_no_events_at_all_is_an_interrupted_run_with_a_valid_report(tmp_path: Path) -> None:
    report = build_report(*read_events(tmp_path / "missing.jsonl"))
    assert report["run"]["verdict"] == "interrupted" and report["run"]["id"] is None
    validate_report(report)
    assert render_markdown(report).startswith("# INTERRUPTED: run ?, model not reached")


def test_ctrl_c_is_interrupted_even_when_tests_passed(tmp_path: Path) -> None:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    full_run(clock, rec, stop_after=-1)
    rec.record("run_ended", exit_status=2, interrupted=True, reason="KeyboardInterrupt")
    report = build_report(*read_events(rec.path))
    assert report["run"]["verdict"] == "interrupted" and report["run"]["reason"] == (
        "KeyboardInterrupt"
    )


def test_a_deployment_left_behind_bills_until_the_run_ends_and_is_noted(tmp_path: Path) -> None:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    full_run(clock, rec, stop_after=-4)  # stops before teardown's deletion
    clock.at(3605)
    rec.record("teardown", resource="endpoint", name="ep-abc", outcome="failed", detail="HTTP 500")
    report = build_report(*read_events(rec.path))
    assert report["billable"]["endpoint_instance_hours"] == {"Local_CPU": pytest.approx(0.5)}
    assert any("dep-abc" in note["text"] for note in report["notes"])


def test_a_stage_records_and_logs_its_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(tmp_path / "e.jsonl")
    with (
        caplog.at_level("INFO", "harness"),
        pytest.raises(RuntimeError),
        Progress(rec.path, RUN).stage("deployment", "dep-1 on Local_CPU"),
    ):
        raise RuntimeError("quota exceeded")
    stage = build_report(*read_events(rec.path))["stages"][0]
    assert stage["outcome"] == "failed" and stage["error"] == "RuntimeError: quota exceeded"
    assert [r.getMessage() for r in caplog.records] == [
        "deployment: started (dep-1 on Local_CPU)",
        "deployment: failed after 0s (RuntimeError: quota exceeded)",
    ]


def test_a_skipped_stage_is_skipped_not_failed(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "e.jsonl")
    with pytest.raises(pytest.skip.Exception), Progress(rec.path, RUN).stage("backend", "azure"):
        pytest.skip("no Azure settings")
    stage = build_report(*read_events(rec.path))["stages"][0]
    assert stage["outcome"] == "skipped" and stage["error"] == "no Azure settings"


def test_a_report_that_breaks_the_schema_is_still_written_with_an_error_note(
    written: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    broken = json.loads(json.dumps(written[0]))
    broken["compute"]["gpus_per_node"] = "eight"
    write_report(broken, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    notes = json.loads((tmp_path / "report.json").read_text())["notes"]
    assert notes[-1]["level"] == "error" and "compute/gpus_per_node" in notes[-1]["text"]


def _record_from_another_process(path: str, worker: int) -> None:
    rec = Recorder(Path(path))
    for i in range(20):
        rec.record("note", text=f"worker {worker} line {i} " + "x" * 2000)


def test_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_record_from_another_process, args=(str(path), n)) for n in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    events, unreadable = read_events(path)
    assert unreadable == 0 and len(events) == 60
    assert len({e["text"] for e in events}) == 60


def test_unknown_kinds_and_missing_fields_are_refused(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "e.jsonl")
    with pytest.raises(ReportError, match="unknown report event kind 'jobb'"):
        rec.record("jobb", name="x")
    with pytest.raises(ReportError, match=r"lacks \['status'\]"):
        rec.record("job", name="x")
    with pytest.raises(ReportError, match="unexpected fields"):
        rec.record("test", nodeid="x", outcome="passed", colour="red")
    with pytest.raises(ReportError, match="computed by the report"):
        rec.record("figure", name="eval_loss_after", value=1.0)
    with pytest.raises(ReportError, match=r"value='high', better='up' has the wrong type"):
        rec.record("figure", name="x", value="high", better="up")
    with pytest.raises(ReportError, match="nodes='2'"):
        rec.record("compute", name="c", sku="S", nodes="2")
    assert not rec.path.exists()


def test_run_started_records_library_versions(tmp_path: Path) -> None:
    event = Recorder(tmp_path / "e.jsonl").record("run_started", run_id="r", backend="local")
    assert event["versions"]["pytest"] == pytest.__version__
    assert "llm-finetune-harness" in event["versions"]


def test_a_report_that_breaks_the_schema_is_refused(written: tuple[dict[str, Any], Path]) -> None:
    broken = json.loads(json.dumps(written[0]))
    broken["run"]["verdict"] = "green"
    del broken["samples"][0]["status"]
    with pytest.raises(ReportError, match="2 problem") as raised:
        validate_report(broken)
    assert "run/verdict" in str(raised.value) and "samples/0" in str(raised.value)
    with pytest.raises(ReportError, match="schema_version is 9"):
        validate_report({**written[0], "schema_version": 9})


def test_times_are_utc_iso(written: tuple[dict[str, Any], Path]) -> None:
    assert written[0]["run"]["started_at"] == "2025-11-30T00:00:00.000+00:00"
    assert written[0]["run"]["ended_at"] == "2025-11-30T00:42:10.000+00:00"
