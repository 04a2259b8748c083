"""report.html: the whole run on one self-contained page.

One file that survives being uploaded as a CI artifact or mailed: the plots are embedded as
base64 ``data:`` URIs, the style is inline, and nothing is fetched (no external ``src``).
Links (the studio job URL, the endpoint, the files beside the report) are clickable and only
followed when clicked. Every value is HTML-escaped: model answers and failure messages are
arbitrary text. The verdict, its reason and the failing tests' crash lines come first;
tracebacks are folded, and long text wraps instead of widening the page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import PurePosixPath
from typing import Any

from harness.report import text
from harness.report.text import TREND_CAPTION

STYLE = """
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:1100px;padding:0 1em;
color:#212121}p,h1,h2,summary{overflow-wrap:anywhere}
h1{font-size:1.6em;margin:.3em 0}
h1.passed{color:#2e7d32}h1.failed{color:#c62828}h1.interrupted{color:#ef6c00}
h1.not-validated{color:#b26a00;background:#fff8e1;padding:.2em .4em}
p.why{font-size:1.15em;font-weight:600;margin:.3em 0 .8em}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}td,th{border:1px solid #ccc;
padding:.25em .5em;vertical-align:top;text-align:left;overflow-wrap:break-word}
td.text{white-space:pre-wrap;max-width:28em;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f5f5f5;padding:.5em;font-size:85%}
img{max-width:100%}.note{background:#fff3e0;padding:.5em}code{font-size:90%}
"""
LINKED_FILES = (
    "report.json",
    "report.md",
    "harness.log",
    "loss.png",
    "timeline.png",
    "trend.png",
)
_LINKABLE = ("https://", "http://", "file://")
OBJECT_SECTIONS = (
    "model",
    "compute",
    "parameters",
    "dataset",
    "job",
    "registered_model",
    "endpoint",
    "deployment",
)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: int = 0) -> str:
    rows = list(rows)
    if not rows:
        return "<p>None recorded.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=text' if i >= len(header) - text_columns else ''}>{_cell(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    """An escaped cell; a URL or a log file's absolute path (the local job's "studio URL")
    becomes a link."""
    shown = escape(str("" if value is None else value))
    if not isinstance(value, str) or " " in value or "\n" in value:
        return shown
    if value.startswith(_LINKABLE):
        return f'<a href="{shown}">{shown}</a>'
    if value.endswith(".log") and PurePosixPath(value).is_absolute():
        return f'<a href="{escape(PurePosixPath(value).as_uri())}">{shown}</a>'
    return shown


def _image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<h2>{escape(name)}</h2><img alt="{escape(name)}" src="data:image/png;base64,{data}">'


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def _objects(report: Mapping[str, Any]) -> str:
    parts = []
    for name in OBJECT_SECTIONS:
        title = escape(text.SECTION_LABELS[name])
        section = report[name]
        if not section:
            parts.append(f"<h3>{title}</h3><p>Not reached.</p>")
            continue
        rows = [(k, _value(v)) for k, v in section.items() if k != "statuses"]
        parts.append(f"<h3>{title}</h3>" + _table(("field", "value"), rows, 1))
    return "<h2>Resources</h2>" + "".join(parts)


def _samples(report: Mapping[str, Any]) -> str:
    rows = [text.sample_row(s) for s in report["samples"]]
    if not rows:
        return "<h2>Answers</h2><p>No scoring sample was reached.</p>"
    return f"<h2>Answers ({escape(report['quality_metric'] or 'not scored')})</h2>" + _table(
        text.SAMPLE_COLUMNS, rows, 3
    )


def _comparison(report: Mapping[str, Any]) -> str:
    comparison = report.get("comparison")
    if not comparison:
        return ""
    rows = text.comparison_rows(comparison)
    return f"<h2>Compared with {escape(str(comparison['old']))}</h2>" + _table(
        text.COMPARISON_HEADER, rows
    )


def _trend_caption(report: Mapping[str, Any]) -> str:
    if not report.get("trend"):
        return ""
    return f"<p>{escape(TREND_CAPTION)}</p>"


def _overview(report: Mapping[str, Any]) -> str:
    run = report["run"]
    verdict_class = run["verdict"].replace(" ", "-")
    parts = [
        f'<h1 class="{escape(verdict_class)}">{escape(text.headline(report))}</h1>',
        f'<p class="why">{escape(text.reason(report))}</p>' if text.reason(report) else "",
        _failures(report),
        f"<p>Started {escape(str(run['started_at']))}, took "
        f"{escape(text.duration(run['duration_s']))}; tests: "
        f"{escape(text.outcome_counts(report['tests']))}. Files: {_file_links()}</p>",
    ]
    if run["reason"] and run["reason"] != text.reason(report):
        parts.append(f'<p class="note">Ended early: {escape(run["reason"])}</p>')
    if report["not_reached"]:
        parts.append(
            f'<p class="note">Not reached: {escape(", ".join(text.not_reached(report)))}.</p>'
        )
    parts += [
        f'<p class="note">{escape(n["level"])}: {escape(n["text"])}</p>' for n in report["notes"]
    ]
    skips = text.skip_rows(report)
    if skips:
        parts.append(_folded(f"Skipped tests ({len(skips)})", _table(("test", "reason"), skips, 1)))
    return "".join(parts)


def _failures(report: Mapping[str, Any]) -> str:
    rows = text.failure_rows(report)
    if not rows:
        return ""
    tracebacks = "".join(
        _folded(f"Traceback: {t['nodeid']}", f"<pre>{escape(t['message'])}</pre>")
        for t in report["tests"]
        if t["outcome"] in ("failed", "error") and t["message"]
    )
    return (
        "<h2>Failing tests</h2>"
        + _table(("test", "step", "class", "message"), rows, 1)
        + tracebacks
    )


def _folded(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def _file_links() -> str:
    """The files written beside report.html, by relative link."""
    return ", ".join(f'<a href="{name}">{name}</a>' for name in LINKED_FILES)


def _details(report: Mapping[str, Any]) -> str:
    tests = [
        (t["outcome"], t["nodeid"], text.duration(t["duration_s"]), t.get("crash", ""))
        for t in report["tests"]
    ]
    stages = [
        (
            s["name"],
            s["outcome"],
            text.duration(s["start_s"]),
            text.duration(s["duration_s"]),
            s.get("error"),
        )
        for s in report["stages"]
    ]
    teardown = [
        (t["resource"], t["name"], t["outcome"], t.get("detail")) for t in report["teardown"]
    ]
    return "".join(
        [
            "<h2>Tests</h2>",
            _table(("outcome", "test", "duration", "message"), tests, 1),
            "<h2>Stages</h2>",
            _table(("stage", "outcome", "started after", "took", "error"), stages, 1),
            "<h2>Billable time (estimate)</h2>",
            _table(("what", "type", "hours"), text.billable_rows(report)),
            "<h2>Teardown</h2>",
            _table(("resource", "name", "outcome", "detail"), teardown, 1),
            "<h2>Versions</h2>",
            _table(("library", "version"), sorted(report["versions"].items())),
            "<h2>Options</h2>",
            _table(
                ("option", "value"), [(k, _value(v)) for k, v in sorted(report["options"].items())]
            ),
        ]
    )


def render_html(report: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """report.html's text; ``images`` maps a title to PNG bytes to embed."""
    body = "".join(
        [
            _overview(report),
            "<h2>Key figures</h2>",
            _table(("figure", "value", "better", "meaning"), text.figure_rows(report)),
            _comparison(report),
            *(_image(name, png) for name, png in images.items()),
            _trend_caption(report),
            _samples(report),
            _details(report),
            _objects(report),
        ]
    )
    title = escape(text.headline(report))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
