"""Writing a run's report files: report.json, the plots, report.md, report.html.

Every file is written atomically (a CI step uploading the directory never picks up half a
file), and every file is written even for a run that stopped early: the pages then say what
was not reached instead of missing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.files import write_atomic, write_json
from harness.report.build import build_report
from harness.report.recorder import read_events
from harness.report.schema import schema_problems

logger = logging.getLogger("harness")
FILES = ("report.json", "loss.png", "timeline.png", "trend.png", "report.md", "report.html")


def write_report(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write the report files into ``out_dir``; returns file name -> path.

    A report that breaks the schema (a recording bug) is still written, with an error note:
    losing a nightly's report is worse than a malformed field. The history refuses it.
    """
    from harness.report.markdown import render_markdown
    from harness.report.plots import loss_png, timeline_png, trend_png
    from harness.report.webpage import render_html

    problems = schema_problems(report)
    if problems:  # a wiring bug: still write what there is, and say so on every page
        logger.error("the run report does not fit its schema: %s", "; ".join(problems))
        report = {
            **report,
            "notes": [
                *report.get("notes", []),
                {
                    "level": "error",
                    "at": None,
                    "text": f"this report does not fit its schema: {'; '.join(problems[:5])}",
                },
            ],
        }
    images = {"Loss": loss_png(report), "Timeline": timeline_png(report)}
    if report.get("trend"):
        images["Trend"] = trend_png(report)
    written = {
        "report.json": write_json(out_dir / "report.json", report),
        "loss.png": write_atomic(out_dir / "loss.png", images["Loss"]),
        "timeline.png": write_atomic(out_dir / "timeline.png", images["Timeline"]),
        "trend.png": write_atomic(out_dir / "trend.png", images.get("Trend") or trend_png(report)),
        "report.md": write_atomic(out_dir / "report.md", render_markdown(report)),
        "report.html": write_atomic(out_dir / "report.html", render_html(report, images)),
    }
    logger.info("run report (%s) written to %s", report["run"]["verdict"], out_dir / "report.html")
    return written


def report_from_events(events_path: Path, out_dir: Path) -> dict[str, Any]:
    """Read a recorder's file, build the report, write its files; returns the report."""
    events, unreadable = read_events(events_path)
    report = build_report(events, unreadable)
    write_report(report, out_dir)
    return report
