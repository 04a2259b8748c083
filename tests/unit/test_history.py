"""The history of runs, the version-to-version comparison and the versions listing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness import history
from harness.backends.base import RegistryVersion
from harness.comparison import (
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_UNREADABLE,
    IMPROVED,
    NOT_COMPARED,
    REGRESSED,
    WITHIN,
    Tolerances,
    compare,
    compare_command,
)
from harness.errors import ConfigError, ReportError
from harness.report import build_report, read_events
from harness.versions import versions_command
from tests.support.run_events import Clock, full_run, recorder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    clock = Clock()
    rec = recorder(tmp_path_factory.mktemp("history"), clock)
    full_run(clock, rec)
    return build_report(*read_events(rec.path))


def variant(
    base: dict[str, Any],
    version: str,
    run_id: str,
    day: int,
    verdict: str = "passed",
    **figures: float | None,
) -> dict[str, Any]:
    report = copy.deepcopy(base)
    report["model"]["version"] = version
    report["run"].update(
        id=run_id, verdict=verdict, started_at=f"2026-11-{day:02d}T01:00:00.000+00:00"
    )
    for name, value in figures.items():
        report["figures"][name]["value"] = value
    return report


def test_reports_are_stored_by_model_name_and_version(base: dict[str, Any], tmp_path: Path) -> None:
    path = history.append(variant(base, "15", "r1", 1), tmp_path)
    assert path == tmp_path / "Phi-3-tiny" / "15" / "r1.json"
    assert history.load_report(path)["run"]["id"] == "r1"


def test_a_run_that_reached_no_model_is_not_stored(base: dict[str, Any], tmp_path: Path) -> None:
    report = copy.deepcopy(base)
    report["model"] = None
    assert history.append(report, tmp_path) is None and not any(tmp_path.iterdir())


def test_unsafe_names_stay_inside_the_history(base: dict[str, Any], tmp_path: Path) -> None:
    report = variant(base, "../../etc", "r/../x", 1)
    path = history.append(report, tmp_path)
    assert path is not None and tmp_path in path.parents
    assert history.reports(tmp_path, "Phi-3-tiny", "../../etc")[0]["run"]["id"] == "r/../x"


def test_last_passing_is_the_latest_passing_run_of_the_model_other_than_this_one(
    base: dict[str, Any], tmp_path: Path
) -> None:
    for report in (
        variant(base, "15", "r1", 1),
        variant(base, "16", "r2", 2),
        variant(base, "16", "r3", 3, verdict="failed"),
        variant(base, "17", "r4", 4),
    ):
        history.append(report, tmp_path)
    other = variant(base, "1", "z9", 9)
    other["model"]["name"] = "Llama-2-7b-chat"
    history.append(other, tmp_path)
    (tmp_path / "Phi-3-tiny" / "16" / "broken.json").write_text("{not json")
    last = history.last_passing(tmp_path, "Phi-3-tiny")
    assert last is not None and last["run"]["id"] == "r4"
    previous = history.last_passing(tmp_path, "Phi-3-tiny", exclude_run_id="r4")
    assert previous is not None and previous["run"]["id"] == "r2"
    assert history.last_passing(tmp_path, "Mistral") is None
    assert history.baseline("last", tmp_path, "Phi-3-tiny", "r4") == previous


def test_a_baseline_path_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(ReportError, match="does not fit the report schema"):
        history.baseline(str(tmp_path / "x.json"), tmp_path, "M")
    with pytest.raises(ReportError, match="does not exist"):
        history.baseline(str(tmp_path / "nowhere.json"), tmp_path, "M")


def _status(base: dict[str, Any], **new_figures: float | None) -> dict[str, str]:
    old = variant(
        base,
        "15",
        "old",
        1,
        eval_loss_after=2.0,
        answer_score_mean=50.0,
        scoring_latency_p95_s=1.0,
        job_duration_s=1000.0,
    )
    new = variant(
        base,
        "16",
        "new",
        2,
        eval_loss_after=2.0,
        answer_score_mean=50.0,
        scoring_latency_p95_s=1.0,
        job_duration_s=1000.0,
    )
    for name, value in new_figures.items():
        new["figures"][name]["value"] = value
    tolerances = Tolerances(
        eval_loss_after=0.10,
        answer_score_mean=0.10,
        scoring_latency_p95_s=0.10,
        job_duration_s=0.10,
    )
    return {r.figure: r.status for r in compare(old, new, tolerances).rows}


def test_changes_below_a_figures_noise_floor_never_regress(base: dict[str, Any]) -> None:
    """10 % of a tiny model's 1.0 s latency is 0.1 s of scheduling noise, not a regression;
    the floor (0.5 s, 10 chrF points) is what a change must exceed whatever the tolerance."""
    assert _status(base, scoring_latency_p95_s=1.45)["scoring_latency_p95_s"] == WITHIN
    assert _status(base, answer_score_mean=40.5)["answer_score_mean"] == WITHIN


@pytest.mark.parametrize(
    ("figure", "value", "status"),
    [
        ("eval_loss_after", 2.19, WITHIN),
        ("eval_loss_after", 2.21, REGRESSED),
        ("eval_loss_after", 1.5, IMPROVED),
        ("answer_score_mean", 41.0, WITHIN),
        ("answer_score_mean", 39.0, REGRESSED),
        ("answer_score_mean", 61.0, IMPROVED),
        ("scoring_latency_p95_s", 1.4, WITHIN),
        ("scoring_latency_p95_s", 1.6, REGRESSED),
        ("job_duration_s", 1099.0, WITHIN),
        ("job_duration_s", 1101.0, REGRESSED),
        ("job_duration_s", None, NOT_COMPARED),
    ],
)
def test_each_figure_is_judged_in_its_direction_against_its_tolerance(
    base: dict[str, Any], figure: str, value: float | None, status: str
) -> None:
    statuses = _status(base, **{figure: value})
    assert statuses.pop(figure) == status
    assert set(statuses.values()) == {WITHIN}


def test_the_gate_sees_an_improvement_that_shrank_under_a_steady_loss(
    base: dict[str, Any],
) -> None:
    """One training step: eval loss after moves +3.4 % (within 5 %), but fine-tuning's
    improvement over the foundation model shrank by 84 %, and so did the likelihood gain."""
    old = variant(base, "15", "old", 1)  # eval loss 4.5 -> 3.25: improvement 1.25
    new = variant(
        base,
        "16",
        "new",
        2,
        eval_loss_after=3.36,
        eval_loss_improvement=0.2,
        log_likelihood_gain=0.1,
    )
    statuses = {r.figure: r.status for r in compare(old, new).rows}
    assert statuses["eval_loss_after"] == WITHIN
    assert statuses["eval_loss_improvement"] == REGRESSED
    assert statuses["log_likelihood_gain"] == REGRESSED
    assert base["figures"]["eval_loss_improvement"]["value"] == pytest.approx(4.5 - 3.25)
    assert base["figures"]["log_likelihood_gain"]["value"] == pytest.approx(-2.1 + 2.9)
    assert base["figures"]["eval_loss_improvement"]["better"] == "higher"


def test_a_figure_from_a_failed_step_is_never_improved(base: dict[str, Any]) -> None:
    """Every request timed out: no latency was measured, and a scoring figure that would
    read better is no evidence of it."""
    old = variant(base, "15", "old", 1)
    new = variant(base, "16", "new", 2, scoring_latency_p95_s=None, answer_score_mean=90.0)
    new["samples"][0]["status"] = "error"
    rows = {r.figure: r for r in compare(old, new).rows}
    assert rows["scoring_latency_p95_s"].status == NOT_COMPARED
    assert rows["answer_score_mean"].status == NOT_COMPARED
    assert rows["answer_score_mean"].reason == "the scoring step failed"
    worse = variant(base, "16", "new", 2, answer_score_mean=10.0)
    worse["samples"][0]["status"] = "error"
    assert {r.figure: r.status for r in compare(old, worse).rows}["answer_score_mean"] == REGRESSED


def test_a_figure_missing_on_either_side_is_not_compared_and_says_where(
    base: dict[str, Any],
) -> None:
    old = variant(base, "15", "old", 1, answer_score_mean=None)
    new = variant(base, "16", "new", 2, answer_score_mean=None)
    del new["figures"]["job_duration_s"]
    rows = {r.figure: r for r in compare(old, new).rows}
    assert rows["answer_score_mean"].reason == "missing in both report"
    assert rows["job_duration_s"].status == NOT_COMPARED
    assert rows["job_duration_s"].reason == "missing in new report"


def test_the_default_tolerances_live_in_one_place_and_bad_ones_are_refused() -> None:
    assert Tolerances.from_mapping({"job_duration_s": "0.25"}).job_duration_s == 0.25
    assert Tolerances.from_mapping({}) == Tolerances()
    with pytest.raises(ConfigError, match="no tolerance for"):
        Tolerances.from_mapping({"eval_loss": 0.1})
    with pytest.raises(ConfigError, match="fraction >= 0"):
        Tolerances(eval_loss_after=-0.1)
    with pytest.raises(ConfigError, match="not a number"):
        Tolerances.from_mapping({"job_duration_s": "ten"})


def test_the_compare_command_prints_a_table_and_exits_by_the_result(
    base: dict[str, Any], tmp_path: Path
) -> None:
    old = history.append(variant(base, "15", "old", 1), tmp_path)
    worse = history.append(variant(base, "16", "new", 2, eval_loss_after=9.0), tmp_path)
    assert old and worse
    code, out = compare_command(old, worse)
    assert code == EXIT_REGRESSION and out.endswith("REGRESSED: eval_loss_after")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line}
    assert rows["eval_loss_after"][1:] == ["lower", "3.25", "9", "+176.9%", "5%", "regressed"]
    code, out = compare_command(old, old)
    assert code == EXIT_OK and out.endswith("no regression")
    code, out = compare_command(old, worse, as_json=True)
    assert json.loads(out)["regressed"] == ["eval_loss_after"]


def test_the_compare_command_exits_2_on_an_unreadable_report(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[1, 2")
    code, out = compare_command(tmp_path / "bad.json", tmp_path / "bad.json")
    assert code == EXIT_UNREADABLE and out.startswith("error:") and "bad.json" in out


REGISTRY = [
    RegistryVersion("9", archived=True, deprecation={"finetune_retirement": "2025-08-30"}),
    RegistryVersion("15"),
    RegistryVersion("16"),
    RegistryVersion("10"),
]


def test_versions_lists_every_version_with_its_last_passing_run(
    base: dict[str, Any], tmp_path: Path
) -> None:
    history.append(variant(base, "15", "r1", 1), tmp_path)
    history.append(variant(base, "16", "r2", 2, verdict="failed"), tmp_path)
    lines = versions_command("Phi-3-tiny", REGISTRY, tmp_path).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["9", "10", "15", "16"]
    assert "finetune_retirement 2025-08-30" in lines[2] and lines[2].split()[1] == "yes"
    assert "r1 (2026-11-01T01:00:00.000+00:00)" in lines[4] and lines[5].endswith("none")


def test_unvalidated_json_lists_the_versions_to_run_for_a_ci_matrix(
    base: dict[str, Any], tmp_path: Path
) -> None:
    history.append(variant(base, "15", "r1", 1), tmp_path)
    matrix = json.loads(
        versions_command("Phi-3-tiny", REGISTRY, tmp_path, unvalidated=True, as_json=True)
    )
    assert [(m["model_name"], m["model_version"]) for m in matrix] == [
        ("Phi-3-tiny", "10"),
        ("Phi-3-tiny", "16"),
    ]
    with_archived = json.loads(
        versions_command(
            "Phi-3-tiny", REGISTRY, tmp_path, unvalidated=True, as_json=True, include_archived=True
        )
    )
    assert [m["model_version"] for m in with_archived] == ["9", "10", "16"]
    assert with_archived[0]["archived"] is True and with_archived[0]["validated"] is False


def test_runs_adding_the_same_run_id_at_once_all_land_whole(
    base: dict[str, Any], tmp_path: Path
) -> None:
    """Two nightlies given the same --run-id, appending at the same moment: neither entry
    takes the other's place."""
    from concurrent.futures import ThreadPoolExecutor

    reports = [variant(base, "15", "same", day) for day in range(1, 9)]
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda r: history.append(r, tmp_path), reports))
    assert len(set(paths)) == len(reports)
    stored = history.reports(tmp_path, "Phi-3-tiny", "15")
    assert sorted(r["run"]["started_at"] for r in stored) == sorted(
        r["run"]["started_at"] for r in reports
    )


KILLED_WRITER = """
import json, sys
from harness import history
from pathlib import Path
report = json.loads(Path(sys.argv[1]).read_text())
history.append(report, Path(sys.argv[2]))
print("ready", flush=True)
while True:
    history.append(report, Path(sys.argv[2]))
"""


def test_a_writer_killed_mid_write_leaves_only_whole_entries(
    base: dict[str, Any], tmp_path: Path
) -> None:
    """SIGKILL at arbitrary moments of a stream of appends: every entry on disk is a whole
    report, the first one included (nothing half-written, nothing lost)."""
    import signal
    import subprocess
    import sys
    import time

    store = tmp_path / "history"
    first = history.append(variant(base, "15", "r0", 1), store)
    source = tmp_path / "report.json"
    source.write_text(json.dumps(variant(base, "15", "r1", 2)))
    for delay_s in (0.0, 0.02, 0.05):
        writer = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, str(source), str(store)],
            stdout=subprocess.PIPE,
        )
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        time.sleep(delay_s)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    entries = sorted(store.rglob("*.json"))
    assert first in entries and len(entries) > 1
    for path in entries:
        history.load_report(path)  # raises on a partial or corrupt file


def test_corrupt_and_foreign_files_are_skipped_by_name_and_last_still_works(
    base: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history.append(variant(base, "15", "good", 1), tmp_path)
    folder = tmp_path / "Phi-3-tiny" / "15"
    odd = {
        "cut.json": '{"schema_version": 1, "run": {"id": "x", ',
        "empty.json": "",
        "list.json": "[1, 2, 3]",
        "foreign.json": json.dumps({"name": "another tool's file", "run": 3}),
        "binary.json": "\udcff",
    }
    for name, text in odd.items():
        (folder / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    (folder / "directory.json").mkdir()
    with caplog.at_level("WARNING", logger="harness"):
        last = history.baseline("last", tmp_path, "Phi-3-tiny")
    assert last is not None and last["run"]["id"] == "good"
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for name in [*odd, "directory.json"]:
        assert f"history entry skipped: {folder / name}" in warned, warned


def _on_route(report: dict[str, Any], route: str, serverless: bool = False) -> dict[str, Any]:
    report["run"]["backend"] = "azure"
    report["options"] = {
        **report["options"],
        "finetune_route": f"{route} (option --finetune-route)",
        "serverless": f"{serverless} (default)",
    }
    return report


def test_compare_to_last_matches_the_route(base: dict[str, Any], tmp_path: Path) -> None:
    """A serverless run is no baseline for a managed one, nor a pipeline run for either."""
    from harness.report.text import headline

    history.append(_on_route(variant(base, "15", "pipe", 1), "pipeline"), tmp_path)
    history.append(_on_route(variant(base, "15", "job", 2), "finetuning-job"), tmp_path)
    history.append(_on_route(variant(base, "15", "srv", 3), "finetuning-job", True), tmp_path)
    picks = {
        route: (history.last_passing(tmp_path, "Phi-3-tiny", route=route) or {})["run"]["id"]
        for route in ("pipeline", "finetuning-job", "finetuning-job-serverless")
    }
    assert picks == {
        "pipeline": "pipe",
        "finetuning-job": "job",
        "finetuning-job-serverless": "srv",
    }
    assert history.last_passing(tmp_path, "Phi-3-tiny")["run"]["id"] == "srv"  # type: ignore[index]
    srv = history.baseline("last", tmp_path, "Phi-3-tiny", "other", "finetuning-job-serverless")
    assert srv is not None and "on azure, finetuning-job-serverless route" in headline(srv)


def test_a_report_from_before_the_route_options_ran_the_pipeline(base: dict[str, Any]) -> None:
    report = copy.deepcopy(base)
    report["options"].pop("finetune_route", None)
    assert history.route_of(report) == "pipeline"


def _nights(base: dict[str, Any], history_dir: Path) -> None:
    """Three nights of one model: a pass, a pass with a worse loss, a failed run."""
    for day, (loss, verdict) in enumerate(((3.0, "passed"), (3.1, "passed"), (4.0, "failed")), 1):
        history.append(
            variant(base, "15", f"r{day}", day, verdict, eval_loss_after=loss), history_dir
        )


def test_the_trend_shows_each_gated_figure_over_the_nights_with_its_band(
    base: dict[str, Any], tmp_path: Path
) -> None:
    from harness.trend import render, summary

    _nights(base, tmp_path)
    section = summary(history.reports(tmp_path, "Phi-3-tiny"))
    assert [r["id"] for r in section["runs"]] == ["r1", "r2", "r3"]
    loss = section["figures"]["eval_loss_after"]
    assert loss["values"] == [3.0, 3.1, 4.0] and loss["better"] == "lower"
    assert loss["band"] == pytest.approx([3.1 * 0.95, 3.1 * 1.05])  # the last passing run's
    assert section["figures"]["job_duration_s"]["band"] == [1800 - 900, 1800 + 900]
    text = render(section)
    assert "eval_loss_after (lower is better): the next run's band 2.945 .. 3.255" in text
    assert text.splitlines()[3].split()[:4] == ["2026-11-03T01:00", "r3", "15", "failed"]


def test_the_trend_command_takes_the_last_n_runs_and_ends_quietly_in_a_pipe(
    base: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m harness trend | head -1`: the reader goes away; no BrokenPipe traceback."""
    import io
    import os
    import sys

    from harness.__main__ import EXIT_BROKEN_PIPE, main
    from harness.trend import trend_command

    _nights(base, tmp_path)
    last_two = json.loads(trend_command(tmp_path, "Phi-3-tiny", last=2, as_json=True))
    assert [r["id"] for r in last_two["runs"]] == ["r2", "r3"]
    read, write = os.pipe()
    os.close(read)  # head has read its line and exited
    stdout = io.TextIOWrapper(io.FileIO(write, "w"), line_buffering=True)
    monkeypatch.setattr(sys, "stdout", stdout)
    code = main(["trend", f"--history={tmp_path}", "--model-name=Phi-3-tiny"])
    monkeypatch.undo()
    assert code == EXIT_BROKEN_PIPE
    stdout.close()


def test_the_report_has_a_trend_plot_when_the_history_has_the_model(
    base: dict[str, Any], tmp_path: Path
) -> None:
    from harness.report import write_report
    from harness.trend import summary

    _nights(base, tmp_path / "history")
    report = {**base, "trend": summary(history.reports(tmp_path / "history", "Phi-3-tiny"))}
    written = write_report(report, tmp_path / "out")
    assert written["trend.png"].read_bytes().startswith(b"\x89PNG")
    page = written["report.html"].read_text()
    assert page.count("<img") == 3 and "<h2>Trend</h2>" in page
    assert "within tolerance of the latest passing run" in page
    assert "## Trend" in written["report.md"].read_text()
