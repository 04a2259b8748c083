"""The run's verdict: its report, its comparison with an earlier run, its place in the history.

The plugin calls ``finish`` once per run, in the process that saw every test (the xdist
controller, or the only process), after the teardown; the e2e suite's regression test calls
``compare_so_far`` while the run is still going. Both build the report from the run's events
(``harness.progress``), so the gate and the report can never disagree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.progress import events_path

if TYPE_CHECKING:
    from harness.comparison import Comparison, Tolerances
    from harness.config import HarnessConfig

log = logging.getLogger("harness")


@dataclass
class Finished:
    """What the terminal summary says about the run's end."""

    report: dict[str, Any]
    html: Path | None = None
    comparison: Comparison | None = None
    history: Path | None = None
    problems: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # what of the record could not be written

    @property
    def complete(self) -> bool:
        """Every file the run owed its user (report, history entry) was written."""
        return not self.lost


def tolerances(cfg: HarnessConfig) -> Tolerances:
    """``--tolerance figure=fraction`` over the defaults (ConfigError for a bad one)."""
    from harness.comparison import Tolerances

    return Tolerances.from_mapping(dict(cfg.tolerances))


def current_report(cfg: HarnessConfig) -> dict[str, Any]:
    """The report of this run as far as it got."""
    from harness.report import build_report, read_events

    return build_report(*read_events(events_path(cfg.report_dir, cfg.run_id)))


def compare_so_far(cfg: HarnessConfig) -> Comparison | None:
    """This run against ``--compare-to``; None without the option or without a baseline yet."""
    from harness import history
    from harness.comparison import compare

    report = current_report(cfg)
    if cfg.compare_to is None or not report["model"]:
        return None
    model = report["model"]["name"]
    old = history.baseline(cfg.compare_to, cfg.history_dir, model, cfg.run_id, cfg.route)
    if old is None:
        log.info(
            "no passing run of %s on the %s route in the history %s yet: nothing to compare with",
            model,
            cfg.route,
            cfg.history_dir,
        )
        return None
    return compare(old, report, tolerances(cfg))


def finish(cfg: HarnessConfig, interrupted: bool) -> Finished:
    """Write the report (always), compare it, and add a run that ended to the history.

    A report or history directory that is full or read-only costs that file, not the run's
    verdict: the failure is a problem the summary prints (and ``lost`` says what is missing)."""
    from harness import history
    from harness.report import write_report

    done = Finished(current_report(cfg))
    try:
        done.comparison = compare_so_far(cfg)
    except Exception as exc:  # a broken baseline must not cost the night's report
        done.problems.append(f"comparison with {cfg.compare_to} failed: {exc}")
    if done.comparison is not None:
        done.report["comparison"] = done.comparison.to_dict()
    try:
        _add_trend(cfg, done.report)
    except Exception as exc:  # an unreadable history must not cost the night's report
        done.problems.append(f"trend over the history {cfg.history_dir} failed: {exc}")
    try:
        done.html = write_report(done.report, cfg.report_dir)["report.html"]
    except OSError as exc:
        _lost(done, "report", cfg.report_dir, "--report-dir", exc)
    if interrupted:
        done.lost.append("history entry (the run was interrupted)")
        return done
    try:
        done.history = history.append(done.report, cfg.history_dir)
    except OSError as exc:
        _lost(done, "history entry", cfg.history_dir, "--history", exc)
    return done


def _lost(done: Finished, what: str, directory: Path, option: str, exc: OSError) -> None:
    reason = exc.strerror or type(exc).__name__
    done.lost.append(what)
    done.problems.append(
        f"the run's {what} could not be written to {directory} ({reason}); the verdict above "
        f"stands; free space or pass {option}=DIR with a writable directory"
    )
    log.error("the run's %s could not be written to %s: %s", what, directory, reason)


def _add_trend(cfg: HarnessConfig, report: dict[str, Any]) -> None:
    """The report's ``trend`` section: this run and the model's earlier ones."""
    from harness import history, trend

    if not report["model"]:
        return
    runs = [
        r
        for r in history.reports(cfg.history_dir, report["model"]["name"])
        if r["run"]["id"] != report["run"]["id"]
    ]
    report["trend"] = trend.summary([*runs[-(trend.DEFAULT_LAST - 1) :], report], tolerances(cfg))


def rewrite_after_teardown(cfg: HarnessConfig, done: Finished) -> bool:
    """Write the report again when events came after it: pytest tears down the session
    fixtures of a stopped run (Ctrl-C, ``-x``) and the xdist controller deletes what its
    interrupted workers left only after the report was first written. The verdict and the
    comparison stand; the teardown and what the run logged meanwhile are added."""
    from harness.report import write_report

    report = current_report(cfg)
    if report["events"]["count"] <= done.report["events"]["count"]:
        return False
    for section in ("comparison", "trend"):
        if section in done.report:
            report[section] = done.report[section]
    done.report = report
    done.html = write_report(report, cfg.report_dir)["report.html"]
    return True
