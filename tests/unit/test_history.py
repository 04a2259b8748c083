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
