"""The figures a report computes from its sections: percentiles, billable time.

Billable time is an estimate from what the run saw, for comparing runs and spotting leaks, not
an invoice: fine-tune node-hours are the job's duration times its nodes (queueing and cluster
scale-down are not seen); endpoint instance-hours run from the first deployment event (when
creation starts, since Azure bills provisioning VMs) to the endpoint's or deployment's deletion,
or to the end of the run when the run did not delete it (then ``open`` says so).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.report.events import COMPUTED_FIGURES

DELETED = frozenset({"deleted", "started"})  # "started": deletion under way, left to the sweep
_HOUR = 3600.0


def finite(value: Any) -> float | None:
    """A float, or None for anything that is not a finite number (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def finetune_hours(
    job: Mapping[str, Any] | None, compute: Mapping[str, Any] | None
) -> dict[str, float]:
    """Node-hours of the fine-tune job by compute SKU."""
    if not job or finite(job.get("duration_s")) is None:
        return {}
    nodes = job.get("nodes") or (compute or {}).get("nodes") or 1
    sku = str((compute or {}).get("sku") or "unknown")
    return {sku: round(float(job["duration_s"]) * int(nodes) / _HOUR, 4)}


def endpoint_hours(
    deployments: Sequence[Mapping[str, Any]], teardown: Sequence[Mapping[str, Any]], run_end: float
) -> tuple[dict[str, float], list[str]]:
    """Instance-hours by instance type, and a line for each deployment the run left billing."""
    hours: dict[str, float] = {}
    still_billing: list[str] = []
    for deployment in deployments:
        end = _deleted_at(deployment, teardown)
        if end is None:
            end = run_end
            still_billing.append(
                f"deployment {deployment['name']} of endpoint {deployment['endpoint_name']} was "
                "not deleted by the run: it bills until the sweep deletes it"
            )
        count = int(deployment.get("instance_count") or 1)
        used = max(0.0, end - float(deployment["first_at"])) * count / _HOUR
        kind = str(deployment["instance_type"])
        hours[kind] = round(hours.get(kind, 0.0) + used, 4)
    return hours, still_billing


def _deleted_at(
    deployment: Mapping[str, Any], teardown: Sequence[Mapping[str, Any]]
) -> float | None:
    for entry in teardown:
        ours = (entry["resource"], entry["name"]) in {
            ("endpoint", deployment["endpoint_name"]),
            ("deployment", deployment["name"]),
        }
        if ours and entry["outcome"] in DELETED:
            return float(entry["at_s"])
    return None


def figure(name: str, value: Any, **info: Any) -> dict[str, Any]:
    """One figure entry: value (or null) with its unit, description and better direction."""
    unit, description, better = COMPUTED_FIGURES.get(name, ("", "", None))
    return {
        "value": finite(value),
        "unit": info.get("unit", unit),
        "description": info.get("description", description),
        "better": info.get("better", better),
    }


def difference(minuend: float | None, subtrahend: float | None) -> float | None:
    """``minuend - subtrahend``, or None when either was not measured (never a zero)."""
    if minuend is None or subtrahend is None:
        return None
    return minuend - subtrahend


def first_last(points: Sequence[Sequence[Any]]) -> tuple[float | None, float | None]:
    """The first value of a series, and its last when it has more than one point."""
    values = [p[1] for p in points if finite(p[1]) is not None]
    if not values:
        return None, None
    return values[0], values[-1] if len(values) > 1 else None
