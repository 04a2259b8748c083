"""Comparing two runs' reports: did a figure get worse than its tolerance allows?

Six figures gate a new model version against the last passing run: eval loss after
fine-tuning, what fine-tuning did (eval loss before minus after, and the reference
log-likelihood gain over the foundation model where the backend measures it), mean answer
score, scoring p95 latency and job duration. The absolute loss alone misses a run that barely
trained: one training step moves eval loss by 3 % while the improvement shrinks by 84 %. Each
tolerance is relative to the old value (0.10 = 10 % worse still passes), in the figure's own
direction. A figure missing on either side is "not compared" and says so; it neither passes
nor fails by accident, and a figure from a step that failed (a scoring sample with no answer)
is never "improved".

The defaults are loose where the figure is noisy: three scoring samples at temperature 0.6
move chrF by several points, and latency and job duration swing with the region's load and
queue, so only large changes there are worth failing a nightly for; eval loss on a fixed
dataset and seed is steadier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ReportError
from harness.report.events import COMPUTED_FIGURES

REGRESSED, IMPROVED, WITHIN, NOT_COMPARED = (
    "regressed",
    "improved",
    "within tolerance",
    "not compared",
)
EXIT_OK, EXIT_REGRESSION, EXIT_UNREADABLE = 0, 1, 2


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerance per compared figure; the one place the defaults live."""

    eval_loss_after: float = 0.05
    eval_loss_improvement: float = 0.25
    log_likelihood_gain: float = 0.25
    answer_score_mean: float = 0.15
    scoring_latency_p95_s: float = 0.50
    job_duration_s: float = 0.50

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not isinstance(value, (int, float)) or not 0 <= value < 100:
                raise ConfigError(
                    f"tolerance {name}={value!r} must be a fraction >= 0 "
                    "(0.10 allows 10 % worse); fix the option"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Tolerances:
        """From option values (strings allowed); an unknown figure name is refused."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"no tolerance for {unknown}; tolerances exist for {known}")
        try:
            return cls(**{k: float(v) for k, v in values.items()})
        except ValueError as exc:
            raise ConfigError(f"a tolerance is not a number ({exc}); pass e.g. 0.10") from None


# The smallest change worth failing a nightly for, whatever the tolerance says: below these a
# small baseline (a tiny model's 0.2 s latency, a 90 s job) turns noise into "regressions".
NOISE_FLOORS = {
    "eval_loss_after": 0.01,
    "eval_loss_improvement": 0.01,
    "log_likelihood_gain": 0.01,
    "answer_score_mean": 10.0,  # chrF points: three samples at temperature 0.6 move it this much
    "scoring_latency_p95_s": 0.5,
    "job_duration_s": 60.0,
}


@dataclass(frozen=True)
class FigureComparison:
    figure: str
    better: str  # "lower" or "higher"
    old: float | None
    new: float | None
    tolerance: float
    status: str
    reason: str = ""

    @property
    def change(self) -> float | None:
        """(new - old) / |old|, or None when it cannot be computed."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        return (self.new - self.old) / abs(self.old)


# The workflow step each gated figure comes from: its figures are not evidence when it failed.
FIGURE_STEPS = {
    "eval_loss_after": "finetune_job",
    "eval_loss_improvement": "finetune_job",
    "log_likelihood_gain": "reference_likelihood",
    "answer_score_mean": "scoring",
    "scoring_latency_p95_s": "scoring",
    "job_duration_s": "finetune_job",
}


def _judge(
    figure: str, old: float | None, new: float | None, tolerance: float, failed: set[str]
) -> FigureComparison:
    better = COMPUTED_FIGURES[figure][2] or "lower"
    if old is None or new is None:
        side = "both" if old is None and new is None else ("old" if old is None else "new")
        return FigureComparison(
            figure, better, old, new, tolerance, NOT_COMPARED, f"missing in {side} report"
        )
    allowance = max(abs(old) * tolerance, NOISE_FLOORS.get(figure, 0.0))
    worse = new - old if better == "lower" else old - new
    status = REGRESSED if worse > allowance else IMPROVED if -worse > allowance else WITHIN
    step = FIGURE_STEPS.get(figure)
    if status != REGRESSED and step in failed:
        return FigureComparison(
            figure, better, old, new, tolerance, NOT_COMPARED, f"the {step} step failed"
        )
    return FigureComparison(figure, better, old, new, tolerance, status)


def failed_steps(report: Mapping[str, Any]) -> set[str]:
    """Steps whose figures are no evidence: a stage that did not end ok, and the scoring
    when a sample got no answer."""
    failed = {s["name"] for s in report.get("stages", []) if s.get("outcome") != "ok"}
    if any(s.get("status") != "ok" for s in report.get("samples", [])):
        failed.add("scoring")
    return failed


def _value(report: Mapping[str, Any], figure: str) -> float | None:
    value = (report.get("figures", {}).get(figure) or {}).get("value")
    return float(value) if isinstance(value, (int, float)) else None


def _label(report: Mapping[str, Any]) -> str:
    run, model = report["run"], report.get("model") or {}
    return (
        f"{run.get('id')} ({model.get('name', '?')}:{model.get('version', '?')}, "
        f"{run.get('verdict')}, {run.get('started_at')})"
    )


@dataclass(frozen=True)
class Comparison:
    old: str  # label of the baseline run
    new: str
    rows: tuple[FigureComparison, ...]

    @property
    def regressed(self) -> list[str]:
        return [r.figure for r in self.rows if r.status == REGRESSED]

    @property
    def not_compared(self) -> list[str]:
        return [r.figure for r in self.rows if r.status == NOT_COMPARED]

    def to_dict(self) -> dict[str, Any]:
        """The report's ``comparison`` section: plain, JSON-ready values."""
        return {
            "old": self.old,
            "new": self.new,
            "regressed": self.regressed,
            "rows": [
                {
                    "figure": r.figure,
                    "better": r.better,
                    "old": r.old,
                    "new": r.new,
                    "change": _percent(r.change),
                    "tolerance": f"{r.tolerance * 100:g}%",
                    "status": r.status,
                    "reason": r.reason,
                }
                for r in self.rows
            ],
        }

    def render(self) -> str:
        """A text table, then one line saying which figures regressed, if any."""
        header = ("figure", "better", "old", "new", "change", "tolerance", "status")
        rows = [
            (
                r["figure"],
                r["better"],
                _number(r["old"]),
                _number(r["new"]),
                r["change"],
                r["tolerance"],
                f"{r['status']} ({r['reason']})" if r["reason"] else r["status"],
            )
            for r in self.to_dict()["rows"]
        ]
        from harness.report.terminal import aligned

        lines = [f"old: {self.old}", f"new: {self.new}", "", *aligned(header, rows)]
        lines.append("")
        if self.regressed:
            lines.append(f"REGRESSED: {', '.join(self.regressed)}")
        else:
            lines.append(
                "no regression"
                + (f"; not compared: {', '.join(self.not_compared)}" if self.not_compared else "")
            )
        return "\n".join(lines)


def _percent(change: float | None) -> str:
    return "n/a" if change is None else f"{change:+.1%}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def compare(
    old: Mapping[str, Any], new: Mapping[str, Any], tolerances: Tolerances | None = None
) -> Comparison:
    """Each gated figure of ``new`` against ``old``, within ``tolerances``."""
    limits = dataclasses.asdict(tolerances or Tolerances())
    failed = failed_steps(new)
    rows = tuple(
        _judge(name, _value(old, name), _value(new, name), limit, failed)
        for name, limit in limits.items()
    )
    return Comparison(_label(old), _label(new), rows)


def compare_command(
    old_path: Path, new_path: Path, tolerances: Tolerances | None = None, as_json: bool = False
) -> tuple[int, str]:
    """``python -m harness compare OLD NEW``: (exit code, text to print).

    Exit 0: no figure regressed; 1: at least one did; 2: a report could not be read.
    """
    from harness.history import load_report

    try:
        old, new = load_report(old_path), load_report(new_path)
    except ReportError as exc:
        return EXIT_UNREADABLE, f"error: {exc}"
    comparison = compare(old, new, tolerances)
    out = json.dumps(comparison.to_dict(), indent=2) if as_json else comparison.render()
    return (EXIT_REGRESSION if comparison.regressed else EXIT_OK), out
