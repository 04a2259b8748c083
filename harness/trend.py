"""The last N nights of a model: each gated figure over the history, with the tolerance band.

A single comparison says whether tonight is worse than the last passing run; a slow drift
(each night 4 % worse, under a 5 % tolerance) only shows over many nights. The band is the
"within tolerance" range around the latest passing run's value (its tolerance, or its noise
floor when larger: the rule ``comparison`` applies); past its worse edge the next run fails
the gate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.comparison import NOISE_FLOORS, Tolerances
from harness.report.events import COMPUTED_FIGURES

DEFAULT_LAST = 14


def _value(report: Mapping[str, Any], figure: str) -> float | None:
    value = (report.get("figures", {}).get(figure) or {}).get("value")
    return float(value) if isinstance(value, (int, float)) else None


def band(figure: str, baseline: float | None, tolerance: float) -> list[float] | None:
    """[low, high]: "within tolerance" of ``baseline``; past the worse edge the gate fails,
    past the better one it says "improved". None without a baseline."""
    if baseline is None:
        return None
    allowance = max(abs(baseline) * tolerance, NOISE_FLOORS.get(figure, 0.0))
    return [baseline - allowance, baseline + allowance]


def summary(
    reports: Sequence[Mapping[str, Any]], tolerances: Tolerances | None = None
) -> dict[str, Any]:
    """The report's ``trend`` section: the runs (oldest first) and, per gated figure, its
    value in each run, which way is better and the band around the latest passing run."""
    limits = dataclasses.asdict(tolerances or Tolerances())
    passing = [r for r in reports if r["run"]["verdict"] == "passed"]
    runs = [
        {
            "id": r["run"]["id"],
            "started_at": r["run"]["started_at"],
            "version": (r.get("model") or {}).get("version"),
            "verdict": r["run"]["verdict"],
        }
        for r in reports
    ]
    figures = {
        name: {
            "better": COMPUTED_FIGURES[name][2],
            "values": [_value(r, name) for r in reports],
            "band": band(name, _value(passing[-1], name) if passing else None, limit),
        }
        for name, limit in limits.items()
    }
    return {"runs": runs, "figures": figures}


def render(section: Mapping[str, Any]) -> str:
    """One line per run (its figures), then each figure's band."""
    from harness.report.terminal import aligned
    from harness.report.text import number

    names = list(section["figures"])
    header = ("started", "run", "version", "verdict", *names)
    rows = [
        (
            (run["started_at"] or "?")[:16],
            run["id"],
            run["version"],
            run["verdict"],
            *(number(section["figures"][n]["values"][i]) for n in names),
        )
        for i, run in enumerate(section["runs"])
    ]
    lines = aligned(header, rows) if rows else ["no run of this model in the history"]
    for name, figure in section["figures"].items():
        shown = (
            "no passing run yet"
            if figure["band"] is None
            else (f"{number(figure['band'][0])} .. {number(figure['band'][1])}")
        )
        lines.append(f"{name} ({figure['better']} is better): the next run's band {shown}")
    return "\n".join(lines)


def trend_command(
    history_dir: Path,
    model_name: str,
    last: int = DEFAULT_LAST,
    tolerances: Tolerances | None = None,
    as_json: bool = False,
) -> str:
    """``python -m harness trend``: the last ``last`` runs of ``model_name`` as text or JSON."""
    from harness import history

    section = summary(history.reports(history_dir, model_name)[-last:], tolerances)
    return json.dumps(section, indent=2) if as_json else render(section)
