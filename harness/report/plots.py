"""loss.png and timeline.png, drawn with matplotlib's Agg canvas.

matplotlib is imported inside the functions (never at plugin import), and through its object
API (``Figure`` + ``FigureCanvasAgg``) rather than ``pyplot``: no global figure state, no GUI
backend probing, and about a second less to import. A plot with nothing to show still comes
out, saying what the run did not reach, so a report page never has a broken image.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from harness.report.text import duration

_DPI = 100
_COLOURS = {
    "ok": "#2e7d32",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "skipped": "#9e9e9e",
    "unfinished": "#90a4ae",
}
_MINUTES_FROM_S = 600  # a timeline longer than this is drawn in minutes
_LABEL_CHAR_IN = 0.075  # width of a tick label character at the default 10 pt, in inches


def _figure(width: float, height: float, left: float = 0.09) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)
    # fixed margins: a layout engine would cost a second draw per plot
    figure.subplots_adjust(left=left, right=0.97, top=1 - 0.35 / height, bottom=0.5 / height)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    out = io.BytesIO()
    figure.canvas.print_png(out)
    return out.getvalue()


def _empty(figure: Any, text: str) -> bytes:
    axes = figure.subplots()
    axes.set_axis_off()
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=12)
    return _png(figure)


def _title(report: Mapping[str, Any]) -> str:
    model = report.get("model") or {}
    label = f"{model.get('name')}:{model.get('version')}" if model else "model not reached"
    return f"run {report['run'].get('id') or '?'} - {label}"


def loss_png(report: Mapping[str, Any]) -> bytes:
    """Training loss (line) and eval loss (points) against the step."""
    figure = _figure(8, 4)
    series = {
        name: [p for p in report["metrics"].get(name, []) if p[1] is not None]
        for name in ("loss", "eval_loss")
    }
    if not any(series.values()):
        return _empty(figure, "No loss was recorded: the run did not reach training metrics.")
    axes = figure.subplots()
    if series["loss"]:
        axes.plot(*zip(*series["loss"], strict=True), label="training loss", color="#1565c0")
    if series["eval_loss"]:
        axes.plot(
            *zip(*series["eval_loss"], strict=True), "o--", label="eval loss", color="#c62828"
        )
    axes.set(xlabel="step", ylabel="loss", title=_title(report))
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def timeline_png(report: Mapping[str, Any]) -> bytes:
    """Each stage as a bar on one time axis, so overlapping stages show as overlapping bars."""
    stages: Sequence[Mapping[str, Any]] = report["stages"]
    labels = [f"{s['name']} ({s['outcome']})" for s in stages]
    width = 9.0
    left = min(0.5, 0.1 + max(map(len, labels), default=0) * _LABEL_CHAR_IN / width)
    figure = _figure(width, 1.2 + 0.45 * max(len(stages), 1), left)
    if not stages:
        return _empty(figure, "No stage was recorded: the run ended before its first stage.")
    run_end = float(report["run"].get("duration_s") or 0.0)
    scale, unit = (60.0, "min") if run_end > _MINUTES_FROM_S else (1.0, "s")
    axes = figure.subplots()
    for row, stage in enumerate(stages):
        end = stage["end_s"] if stage["end_s"] is not None else run_end
        start = stage["start_s"]
        axes.barh(
            row,
            max(end - start, run_end / 500) / scale,
            left=start / scale,
            color=_COLOURS.get(stage["outcome"], "#6a1b9a"),
            hatch="//" if stage["outcome"] == "unfinished" else None,
        )
        axes.text(end / scale, row, f" {duration(end - start)}", va="center", fontsize=8)
    axes.set_yticks(range(len(stages)), labels)
    axes.invert_yaxis()  # first stage on top
    axes.set(xlabel=f"time since the run started ({unit})", title=_title(report))
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def trend_png(report: Mapping[str, Any]) -> bytes:
    """Each gated figure over the last runs of the model (small multiples), with the band
    "within tolerance" of the latest passing run shaded; failed runs' points in red."""
    section = report.get("trend") or {"runs": [], "figures": {}}
    figure = _figure(9, 4.2)
    if not section["runs"]:
        return _empty(figure, "No history of this model yet: the trend starts with its first run.")
    names = list(section["figures"])
    grid = figure.subplots(2, (len(names) + 1) // 2, squeeze=False)
    figure.subplots_adjust(hspace=0.6, wspace=0.35, left=0.06)
    colours = [
        _COLOURS["ok"] if run["verdict"] == "passed" else _COLOURS["failed"]
        for run in section["runs"]
    ]
    for axes, name in zip(grid.flat, names, strict=False):
        entry = section["figures"][name]
        points = [(i, v) for i, v in enumerate(entry["values"]) if v is not None]
        if entry["band"] is not None:
            axes.axhspan(*entry["band"], color="#bbdefb", alpha=0.6, lw=0)
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, color="#616161", lw=1)
            axes.scatter(xs, ys, c=[colours[i] for i in xs], s=14, zorder=3)
        axes.set_title(f"{name} ({entry['better'] or '?'} better)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.set_xticks(range(len(section["runs"])))
        axes.set_xticklabels([(r["started_at"] or "?")[5:10] for r in section["runs"]], fontsize=6)
    for axes in list(grid.flat)[len(names) :]:
        axes.set_axis_off()
    return _png(figure)
