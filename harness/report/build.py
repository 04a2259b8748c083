"""Run events -> the content of report.json (schema in ``harness/report/schema.json``).

The report is built from whatever was recorded: a run killed after two minutes still gets a
report that says what it reached and what it did not (``not_reached``), so the morning reader
can tell "the job failed" from "the run never got to the job".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from harness.backends.base import JOB_FINAL
from harness.report import figures as fig
from harness.report.recorder import Event
from harness.report.schema import SCHEMA_VERSION

META = ("kind", "at", "pid", "worker")
SECTIONS = (
    "model",
    "compute",
    "parameters",
    "dataset",
    "job",
    "metrics",
    "registered_model",
    "endpoint",
    "deployment",
    "samples",
    "tests",
    "teardown",
)
# the worst phase of a test wins: a skip in the call outranks the passed setup
_OUTCOME_RANK = {"error": 0, "failed": 1, "xpassed": 2, "xfailed": 3, "skipped": 4, "passed": 5}
_MESSAGE_CHARS = 2000


def iso(at: float | None) -> str | None:
    """UTC ISO 8601 with milliseconds, the report's one time format."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def _fields(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in META}


def _of(events: Sequence[Event], kind: str) -> list[Event]:
    return [e for e in events if e["kind"] == kind]


def _merged(events: Sequence[Event], kind: str) -> dict[str, Any] | None:
    """The fields of every event of one kind, later ones overriding earlier ones."""
    found = _of(events, kind)
    merged: dict[str, Any] = {}
    for event in found:
        merged.update(_fields(event))
    return merged or None


def _run(events: Sequence[Event]) -> dict[str, Any]:
    started = _merged(events, "run_started") or {}
    ended = _of(events, "run_ended")
    start: float | None = events[0]["at"] if events else None
    end: float | None = ended[-1]["at"] if ended else (events[-1]["at"] if events else None)
    last = _fields(ended[-1]) if ended else {}
    reason = last.get("reason") or (
        ""
        if ended
        else "the run stopped without recording its end (killed, or the machine went away)"
    )
    return {
        "id": started.get("run_id"),
        "backend": started.get("backend"),
        "started_at": iso(start),
        "ended_at": iso(end),
        "duration_s": end - start if end is not None and start is not None else None,
        "interrupted": bool(last.get("interrupted")) or not ended,
        "exit_status": last.get("exit_status"),
        "reason": reason,
    }


def _job(events: Sequence[Event]) -> dict[str, Any] | None:
    found = _of(events, "job")
    job = _merged(events, "job")
    if job is None:
        return None
    statuses = [
        {"status": e["status"], "at": iso(e["at"])}
        for i, e in enumerate(found)
        if i == 0 or e["status"] != found[i - 1]["status"]
    ]
    terminal = next((e["at"] for e in found if e["status"] in JOB_FINAL), None)
    duration = fig.finite(job.get("duration_s"))
    if duration is None and terminal is not None:
        duration = terminal - found[0]["at"]
    return {
        **job,
        "submitted_at": iso(found[0]["at"]),
        "ended_at": iso(terminal),
        "duration_s": duration,
        "statuses": statuses,
    }


def _metrics(events: Sequence[Event]) -> dict[str, list[list[float | None]]]:
    series: dict[str, list[list[float | None]]] = {}
    for event in _of(events, "metrics"):
        for name, points in event["series"].items():
            if not isinstance(points, list):
                continue  # not a series (e.g. a value the redaction removed)
            series[str(name)] = [
                [float(p[0]), fig.finite(p[1])]
                if isinstance(p, (list, tuple))
                else [float(i), fig.finite(p)]
                for i, p in enumerate(points)
            ]
    return series


def _samples(events: Sequence[Event]) -> list[dict[str, Any]]:
    samples = [_fields(e) for e in _of(events, "sample")]
    for position, sample in enumerate(samples):
        sample.setdefault("index", position)
        sample["latency_s"] = fig.finite(sample.get("latency_s"))
        sample["score"] = fig.finite(sample.get("score"))
    needs_score = [
        s
        for s in samples
        if s["score"] is None
        and s["status"] == "ok"
        and isinstance(s.get("answer"), str)
        and isinstance(s.get("reference"), str)
    ]
    if needs_score:
        from harness.quality import answer_score

        for sample in needs_score:
            sample["score"] = answer_score(sample["answer"], sample["reference"])
    return sorted(samples, key=lambda s: s["index"])


def _stages(events: Sequence[Event], start: float) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["kind"] == "stage_started":
            stage = {
                "name": event["name"],
                "start_s": event["at"] - start,
                "end_s": None,
                "started_at": iso(event["at"]),
                "ended_at": None,
                "duration_s": None,
                "outcome": "unfinished",
            }
            stages.append(stage)
            pending[event["name"]].append(stage)
        elif event["kind"] == "stage_ended" and pending[event["name"]]:
            stage = pending[event["name"]].pop(0)
            stage.update(
                end_s=event["at"] - start,
                ended_at=iso(event["at"]),
                duration_s=event["at"] - start - stage["start_s"],
                outcome=event.get("outcome", "ok"),
                error=event.get("error"),
            )
    return stages


def _tests(events: Sequence[Event]) -> list[dict[str, Any]]:
    """One entry per test: the worst outcome of its phases, their total duration."""
    tests: dict[str, dict[str, Any]] = {}
    for event in _of(events, "test"):
        entry = tests.setdefault(
            event["nodeid"],
            {"nodeid": event["nodeid"], "outcome": None, "duration_s": 0.0, "message": ""},
        )
        entry["duration_s"] += fig.finite(event.get("duration_s")) or 0.0
        if entry["outcome"] is None or _rank(event["outcome"]) < _rank(entry["outcome"]):
            entry["outcome"] = event["outcome"]
            entry["message"] = str(event.get("message") or "")[:_MESSAGE_CHARS]
    return list(tests.values())


def _rank(outcome: str) -> int:
    return _OUTCOME_RANK.get(outcome, 0)  # an unknown outcome counts as the worst


def _deployments(events: Sequence[Event]) -> list[dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for event in _of(events, "deployment"):
        entry = by_name.setdefault(event["name"], {"first_at": event["at"]})
        entry.update(_fields(event))
    return list(by_name.values())


def build_report(events: Sequence[Event], unreadable_lines: int = 0) -> dict[str, Any]:
    """report.json's content from a run's events (in any order); see schema.json."""
    events = sorted(events, key=lambda e: float(e["at"]))
    run = _run(events)
    start = events[0]["at"] if events else 0.0
    end = events[-1]["at"] if events else 0.0
    teardown = [
        {**_fields(e), "at": iso(e["at"]), "at_s": e["at"]} for e in _of(events, "teardown")
    ]
    deployments = _deployments(events)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "versions": (_merged(events, "run_started") or {}).get("versions", {}),
        "options": (_merged(events, "run_started") or {}).get("options", {}),
        **{
            kind: _merged(events, kind)
            for kind in (
                "model",
                "compute",
                "parameters",
                "dataset",
                "registered_model",
                "endpoint",
            )
        },
        "job": _job(events),
        "deployment": (
            {k: v for k, v in deployments[-1].items() if k != "first_at"} if deployments else None
        ),
        "metrics": _metrics(events),
        "samples": _samples(events),
        "stages": _stages(events, start),
        "tests": _tests(events),
        "teardown": [{k: v for k, v in t.items() if k != "at_s"} for t in teardown],
    }
    endpoint_hours, still_billing = fig.endpoint_hours(deployments, teardown, end)
    report["billable"] = {
        "finetune_node_hours": fig.finetune_hours(report["job"], report["compute"]),
        "endpoint_instance_hours": endpoint_hours,
    }
    report["run"]["verdict"] = fig.verdict(run, report["tests"])
    report["figures"] = _figures(report, events)
    report["quality_metric"] = _quality_label(report["samples"])
    report["not_reached"] = [s for s in SECTIONS if not report[s]]
    report["notes"] = _notes(events, unreadable_lines, still_billing)
    report["events"] = {"count": len(events), "unreadable_lines": unreadable_lines}
    return report


def _figures(report: Mapping[str, Any], events: Sequence[Event]) -> dict[str, Any]:
    eval_before, eval_after = fig.first_last(report["metrics"].get("eval_loss", []))
    loss_first, loss_last = fig.first_last(report["metrics"].get("loss", []))
    scores = [s["score"] for s in report["samples"] if s["score"] is not None]
    latencies = [s["latency_s"] for s in report["samples"] if s["latency_s"] is not None]
    billable = report["billable"]
    figures = {
        "eval_loss_before": eval_before,
        "eval_loss_after": eval_after,
        "train_loss_first": loss_first,
        "train_loss_last": loss_last,
        "answer_score_mean": sum(scores) / len(scores) if scores else None,
        "scoring_latency_p50_s": fig.percentile(latencies, 50),
        "scoring_latency_p95_s": fig.percentile(latencies, 95),
        "job_duration_s": (report["job"] or {}).get("duration_s"),
        "run_duration_s": report["run"]["duration_s"],
        "finetune_node_hours": sum(billable["finetune_node_hours"].values()) or None,
        "endpoint_instance_hours": sum(billable["endpoint_instance_hours"].values()) or None,
    }
    out = {name: fig.figure(name, value) for name, value in figures.items()}
    for event in _of(events, "figure"):
        out[event["name"]] = fig.figure(
            event["name"],
            event["value"],
            **{k: event[k] for k in ("unit", "description", "better") if k in event},
        )
    return out


def _quality_label(samples: Sequence[Mapping[str, Any]]) -> str | None:
    if not any(s["score"] is not None for s in samples):
        return None
    from harness.quality import metric_label

    return metric_label()


def _notes(
    events: Sequence[Event], unreadable: int, still_billing: Sequence[str]
) -> list[dict[str, Any]]:
    notes = [
        {"level": e.get("level", "warning"), "text": e["text"], "at": iso(e["at"])}
        for e in _of(events, "note")
    ]
    notes += [{"level": "warning", "text": text, "at": None} for text in still_billing]
    if unreadable:
        notes.append(
            {
                "level": "warning",
                "at": None,
                "text": f"{unreadable} event line(s) were unreadable and left out",
            }
        )
    return notes
