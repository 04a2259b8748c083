"""report.html: the whole run on one self-contained page.

One file that survives being uploaded as a CI artifact or mailed: the plots are embedded as
base64 ``data:`` URIs, the style is inline, and nothing is fetched (no external ``src`` or
``href``; URLs such as the studio link are shown as text). Every value is HTML-escaped: model
answers and failure messages are arbitrary text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from harness.report import text

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#212121}
h1.passed{color:#2e7d32}h1.failed{color:#c62828}h1.interrupted{color:#ef6c00}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;
vertical-align:top;text-align:left}td.text{white-space:pre-wrap;max-width:28em}
img{max-width:100%}.note{background:#fff3e0;padding:.5em}code{font-size:90%}
"""
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
            f"<td{' class=text' if i >= len(header) - text_columns else ''}>"
            f"{escape(str('' if v is None else v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


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
        ("figure", "before", "now", "change", "tolerance", "status"), rows
    )


def _overview(report: Mapping[str, Any]) -> str:
    run = report["run"]
    parts = [
        f'<h1 class="{escape(run["verdict"])}">{escape(text.headline(report))}</h1>',
        f"<p>Started {escape(str(run['started_at']))}, took "
        f"{escape(text.duration(run['duration_s']))}; tests: "
        f"{escape(text.outcome_counts(report['tests']))}.</p>",
    ]
    if run["reason"]:
        parts.append(f'<p class="note">Ended early: {escape(run["reason"])}</p>')
    if report["not_reached"]:
        parts.append(
            f'<p class="note">Not reached: {escape(", ".join(text.not_reached(report)))}.</p>'
        )
    parts += [
        f'<p class="note">{escape(n["level"])}: {escape(n["text"])}</p>' for n in report["notes"]
    ]
    return "".join(parts)


def _details(report: Mapping[str, Any]) -> str:
    tests = [
        (t["outcome"], t["nodeid"], text.duration(t["duration_s"]), t["message"])
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
            _table(("figure", "value", "meaning"), text.figure_rows(report)),
            _comparison(report),
            *(_image(name, png) for name, png in images.items()),
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
