"""The run's end in the terminal: verdict, reason, failing tests, key figures, annotations.

What a person reads when the run ends, before opening any file (lm-evaluation-harness prints
its results table the same way), and what GitHub Actions turns into annotations on the run's
page (``::error title=...::message``, one per failing test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.report import text


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The reason, each failing test with its step, class and crash line, the skips, then the
    key figures as an aligned table."""
    lines = [f"why: {text.reason(report)}"] if text.reason(report) else []
    for test, step, kind, crash in text.failure_rows(report):
        lines.append(f"FAILED {test} [{step}; {kind}]: {crash}")
    for test, reason in text.skip_rows(report):
        lines.append(f"skipped {test}: {reason}")
    rows = [(name, value, better) for name, value, better, _ in text.figure_rows(report)]
    return [*lines, "", *aligned(("figure", "value", "better"), rows)]


def aligned(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A plain text table, columns padded to their widest cell."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def github_annotations(report: Mapping[str, Any]) -> list[str]:
    """One ``::error`` workflow command per failing test (GitHub's escaping of %, CR, LF)."""
    from harness.report.judgement import failures

    lines = []
    for failure in failures(report):
        path = failure["nodeid"].split("::", 1)[0]
        title = f"{failure['nodeid']} ({failure['failure_class']})"
        step = f"[step {failure['step']}] " if failure["step"] else ""
        message = step + (failure["crash"] or failure["outcome"])
        lines.append(
            f"::error file={_escape(path, True)},title={_escape(title, True)}::{_escape(message)}"
        )
    return lines


def _escape(value: str, in_property: bool = False) -> str:
    """GitHub's workflow-command escaping (actions/toolkit, command.ts)."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if in_property:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value
