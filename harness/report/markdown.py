"""report.md: the run as a CI job summary, shown as it is (e.g. ``$GITHUB_STEP_SUMMARY``).

Verdict first, then what a reader acts on. Every cell is escaped (model answers are arbitrary
text: a ``|`` would break the table, a ``<script>`` would be rendered by some CI pages) and
long text is cut; the full text is in report.json and report.html.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.report import text

CELL_CHARS = 160
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def cell(value: Any, limit: int = CELL_CHARS) -> str:
    """One table cell: one line, cut to ``limit`` characters, Markdown and HTML escaped."""
    flat = " ".join(str("" if value is None else value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _overview(report: Mapping[str, Any]) -> list[str]:
    run = report["run"]
    lines = [
        f"# {cell(text.headline(report), 300)}",
        "",
        f"Started {run['started_at'] or 'n/a'}, took {text.duration(run['duration_s'])}; "
        f"tests: {text.outcome_counts(report['tests'])}.",
    ]
    model = report["model"] or {}
    if model.get("explicit_sizes") or model.get("allow_lists"):
        said = model.get("explicit_sizes") or model["allow_lists"]
        lines += ["", f"**Allow-lists:** {cell(said, 500)}"]
    if run["reason"]:
        lines += ["", f"**Ended early:** {cell(run['reason'], 500)}"]
    if report["not_reached"]:
        lines += ["", f"**Not reached:** {', '.join(text.not_reached(report))}."]
    return lines


def _figures(report: Mapping[str, Any]) -> list[str]:
    return [
        "",
        "## Key figures",
        "",
        *table(("figure", "value", "meaning"), text.figure_rows(report)),
    ]


def _tests(report: Mapping[str, Any]) -> list[str]:
    if not report["tests"]:
        return ["", "## Tests", "", "No test outcome was recorded."]
    rows = [
        (t["outcome"], t["nodeid"], text.duration(t["duration_s"]), t["message"])
        for t in report["tests"]
    ]
    return [
        "",
        f"## Tests: {text.outcome_counts(report['tests'])}",
        "",
        *table(("outcome", "test", "duration", "message"), rows),
    ]


def _samples(report: Mapping[str, Any]) -> list[str]:
    samples = report["samples"]
    if not samples:
        return ["", "## Answers", "", "No scoring sample was reached."]
    rows = [text.sample_row(s) for s in samples]
    title = f"## Answers ({len(samples)} samples, {report['quality_metric'] or 'not scored'})"
    return [
        "",
        title,
        "",
        *table(text.SAMPLE_COLUMNS, rows),
    ]


def _stages(report: Mapping[str, Any]) -> list[str]:
    rows = [
        (
            s["name"],
            s["outcome"],
            text.duration(s["start_s"]),
            text.duration(s["duration_s"]),
            s.get("error"),
        )
        for s in report["stages"]
    ]
    body = (
        table(("stage", "outcome", "started after", "took", "error"), rows)
        if rows
        else ["No stage was recorded."]
    )
    billable = text.billable_rows(report)
    return [
        "",
        "## Stages",
        "",
        *body,
        "",
        "## Billable time (estimate)",
        "",
        *(table(("what", "type", "hours"), billable) if billable else ["None recorded."]),
    ]


def _teardown(report: Mapping[str, Any]) -> list[str]:
    rows = [(t["resource"], t["name"], t["outcome"], t.get("detail")) for t in report["teardown"]]
    lines = ["", "## Teardown", ""]
    lines += (
        table(("resource", "name", "outcome", "detail"), rows)
        if rows
        else ["No teardown was recorded."]
    )
    for note in report["notes"]:
        lines += ["", f"> **{cell(note['level'])}:** {cell(note['text'], 1000)}"]
    return lines


def _comparison(report: Mapping[str, Any]) -> list[str]:
    comparison = report.get("comparison")
    if not comparison:
        return []
    rows = text.comparison_rows(comparison)
    return [
        "",
        f"## Compared with {cell(comparison['old'])}",
        "",
        *table(("figure", "before", "now", "change", "tolerance", "status"), rows),
    ]


def render_markdown(report: Mapping[str, Any]) -> str:
    """report.md's text."""
    parts = (_overview, _figures, _comparison, _tests, _samples, _stages, _teardown)
    return "\n".join(line for part in parts for line in part(report)) + "\n"
