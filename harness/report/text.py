"""How report values read as text; shared by report.md and report.html so both say the same."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

SECTION_LABELS = {
    "model": "foundation model",
    "compute": "fine-tune compute",
    "parameters": "fine-tune parameters",
    "dataset": "dataset",
    "job": "fine-tune job",
    "metrics": "training metrics",
    "registered_model": "model registration",
    "endpoint": "endpoint",
    "deployment": "deployment",
    "samples": "scoring samples",
    "tests": "test outcomes",
    "teardown": "teardown",
}
KEY_FIGURES = (
    "eval_loss_before",
    "eval_loss_after",
    "answer_score_mean",
    "scoring_latency_p50_s",
    "scoring_latency_p95_s",
    "job_duration_s",
    "run_duration_s",
    "finetune_node_hours",
    "endpoint_instance_hours",
)


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 20s`` or ``4.2 s``."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def number(value: float | None, unit: str = "") -> str:
    """A figure's value with its unit, 4 significant digits; ``n/a`` when missing."""
    if value is None:
        return "n/a"
    if unit == "s":
        return duration(value)
    shown = f"{value:.4g}"
    return f"{shown} {unit}".strip()


def figure_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value, description) for the key figures, then the free-form ones."""
    figures: Mapping[str, Mapping[str, Any]] = report["figures"]
    names = [n for n in KEY_FIGURES if n in figures]
    names += sorted(n for n in figures if n not in KEY_FIGURES and n in _free_form(report))
    return [
        (n, number(figures[n]["value"], figures[n]["unit"]), figures[n]["description"])
        for n in names
    ]


def _free_form(report: Mapping[str, Any]) -> set[str]:
    from harness.report.events import COMPUTED_FIGURES

    return set(report["figures"]) - set(COMPUTED_FIGURES)


def prompt_text(prompt: Any) -> str:
    """The last user turn of a prompt given as messages, or the prompt itself."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        users = [
            m.get("content", "")
            for m in prompt
            if isinstance(m, Mapping) and m.get("role") == "user"
        ]
        if users:
            return str(users[-1])
    return json.dumps(prompt, default=str)


def outcome_counts(tests: Sequence[Mapping[str, Any]]) -> str:
    """``12 passed, 1 failed`` (pytest's order of outcomes)."""
    counts = Counter(t["outcome"] for t in tests)
    order = ["failed", "error", "passed", "skipped", "xfailed", "xpassed"]
    names = order + sorted(set(counts) - set(order))
    return ", ".join(f"{counts[n]} {n}" for n in names if counts[n]) or "no test recorded"


def headline(report: Mapping[str, Any]) -> str:
    """``PASSED: run h...: Phi-3:15 on local``, the verdict first."""
    run = report["run"]
    model = report["model"]
    label = f"{model['name']}:{model['version']}" if model else "model not reached"
    return f"{run['verdict'].upper()}: run {run['id'] or '?'}, {label} on {run['backend'] or '?'}"


def not_reached(report: Mapping[str, Any]) -> list[str]:
    return [SECTION_LABELS.get(name, name) for name in report["not_reached"]]


def billable_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, SKU or instance type, hours)."""
    billable = report["billable"]
    rows = [
        ("fine-tune node-hours", sku, f"{h:.4f}")
        for sku, h in billable["finetune_node_hours"].items()
    ]
    rows += [
        ("endpoint instance-hours", kind, f"{h:.4f}")
        for kind, h in billable["endpoint_instance_hours"].items()
    ]
    return rows


def comparison_rows(comparison: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The comparison's rows as the Markdown and HTML pages show them."""
    return [
        (r["figure"], number(r["old"]), number(r["new"]), r["change"], r["tolerance"], r["status"])
        for r in comparison["rows"]
    ]


SAMPLE_COLUMNS = ("#", "status", "latency", "score", "prompt", "answer", "reference")


def sample_row(sample: Mapping[str, Any]) -> tuple[Any, ...]:
    """One scoring sample as the Markdown and the HTML report show it (``SAMPLE_COLUMNS``)."""
    return (
        sample["index"],
        sample["status"],
        number(sample["latency_s"], "s"),
        number(sample["score"]),
        prompt_text(sample["prompt"]),
        sample.get("answer") or sample.get("error"),
        sample.get("reference"),
    )
