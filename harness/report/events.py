"""The catalogue of run events: what each kind must and may carry.

The recorder refuses an unknown kind or a missing required field at once, so a wiring mistake
fails the unit tests instead of leaving a hole in a nightly report. Fields beyond the listed
ones are kept for the "object" kinds (model, compute, job, registered_model, endpoint,
deployment), so a handle's ``to_dict()`` can be recorded as it is; other kinds refuse them.

Every event also carries ``kind``, ``at`` (Unix time, seconds), ``pid`` and ``worker`` (the
pytest-xdist worker id, or ``main``), added by the recorder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import ReportError


@dataclass(frozen=True)
class EventKind:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    open: bool = False  # extra fields allowed (a handle's to_dict())
    doc: str = ""


EVENT_KINDS: Mapping[str, EventKind] = {
    "run_started": EventKind(
        ("run_id", "backend"), ("options", "versions"), doc="versions default to library_versions()"
    ),
    "run_ended": EventKind(
        (),
        ("exit_status", "interrupted", "reason"),
        doc="absent: the run was killed; interrupted: Ctrl-C or SIGTERM",
    ),
    "model": EventKind(
        ("name", "version"),
        (
            "id",
            "allow_list_source",
            "inference_allow_list_source",
            "allow_lists",
            "explicit_sizes",
            "finetune_allow_list",
            "inference_allow_list",
            "archived",
            "deprecation",
        ),
        open=True,
        doc="the foundation model; deprecation: {fact: date}",
    ),
    "compute": EventKind(
        ("name", "sku"),
        ("gpus_per_node", "nodes", "created_by_harness"),
        open=True,
        doc="nodes: how many nodes the fine-tune job uses (1)",
    ),
    "parameters": EventKind(("sent",), ("dropped",), doc="fine-tune parameters"),
    "dataset": EventKind(
        ("slices",), ("source", "percent", "dropped_rows"), doc="slices: {split: rows}"
    ),
    "job": EventKind(
        ("name", "status"),
        ("display_name", "url", "duration_s", "nodes", "error"),
        open=True,
        doc="one event per status change; the last one wins",
    ),
    "metrics": EventKind(("series",), doc="{metric: [[step, value], ...]} or {metric: [values]}"),
    "registered_model": EventKind(("name", "version"), ("id", "job_name"), open=True),
    "endpoint": EventKind(("name",), ("provisioning_state", "auth_mode", "scoring_uri"), open=True),
    "deployment": EventKind(
        ("name", "endpoint_name", "instance_type"),
        ("instance_count", "provisioning_state", "traffic_percent", "model_id"),
        open=True,
        doc="record one when creation starts: billing starts",
    ),
    "sample": EventKind(
        ("prompt", "status"),
        ("index", "answer", "reference", "latency_s", "score", "error"),
        doc="status: ok or error; score is computed when absent",
    ),
    "stage_started": EventKind(("name",)),
    "stage_ended": EventKind(
        ("name",), ("outcome", "error"), doc="outcome: ok, failed, skipped or interrupted"
    ),
    "teardown": EventKind(
        ("resource", "name", "outcome"),
        ("detail",),
        doc="outcome: deleted, started (left to the sweep), kept, failed",
    ),
    "test": EventKind(
        ("nodeid", "outcome"),
        ("duration_s", "message"),
        doc="one per test or per phase; the worst phase wins",
    ),
    "figure": EventKind(
        ("name", "value"),
        ("unit", "description", "better"),
        doc="a free-form measurement; better: lower or higher",
    ),
    "note": EventKind(("text",), ("level",), doc="a warning a reader must see"),
}

# Figures build_report computes; a free-form figure may not take their names.
COMPUTED_FIGURES: Mapping[str, tuple[str, str, str | None]] = {
    # name: (unit, description, better)
    "eval_loss_before": ("", "eval loss before fine-tuning", "lower"),
    "eval_loss_after": ("", "eval loss after fine-tuning", "lower"),
    "train_loss_first": ("", "first logged training loss", "lower"),
    "train_loss_last": ("", "last logged training loss", "lower"),
    "answer_score_mean": ("chrF", "mean answer score against the references (0-100)", "higher"),
    "scoring_latency_p50_s": ("s", "scoring latency, median", "lower"),
    "scoring_latency_p95_s": ("s", "scoring latency, 95th percentile", "lower"),
    "job_duration_s": ("s", "fine-tune job duration", "lower"),
    "run_duration_s": ("s", "whole run, first to last event", None),
    "finetune_node_hours": ("h", "fine-tune node-hours, all SKUs", "lower"),
    "endpoint_instance_hours": ("h", "endpoint instance-hours, all instance types", "lower"),
}


_NUMBERS = frozenset({"value", "latency_s", "duration_s", "score", "percent"})
_INTEGERS = frozenset(
    {"exit_status", "nodes", "instance_count", "gpus_per_node", "index", "traffic_percent"}
)
_CHOICES: Mapping[str, tuple[object, ...]] = {
    "better": ("lower", "higher", None),
    "outcome": (
        "ok",
        "failed",
        "skipped",
        "interrupted",
        "passed",
        "error",
        "xfailed",
        "xpassed",
        "deleted",
        "started",
        "kept",
    ),
}
_TYPE_HINT = (
    f"numbers (or None): {sorted(_NUMBERS)}; integers: {sorted(_INTEGERS)}; "
    f"choices: {dict(_CHOICES)}"
)


def _fits(name: str, value: object) -> bool:
    """The report's schema types of the fields it computes with, checked when recorded."""
    if name in _NUMBERS:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if name in _INTEGERS:
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    return name not in _CHOICES or value in _CHOICES[name]


def check_event(kind: str, fields: Mapping[str, object]) -> None:
    """Refuse an unknown kind, a missing required field or an unexpected one."""
    spec = EVENT_KINDS.get(kind)
    if spec is None:
        raise ReportError(f"unknown report event kind {kind!r}; use one of {sorted(EVENT_KINDS)}")
    missing = [name for name in spec.required if name not in fields]
    if missing:
        raise ReportError(f"report event {kind!r} lacks {missing}; it needs {list(spec.required)}")
    extra = sorted(set(fields) - set(spec.required) - set(spec.optional))
    if extra and not spec.open:
        raise ReportError(
            f"report event {kind!r} has unexpected fields {extra}; it takes "
            f"{list(spec.required) + list(spec.optional)}"
        )
    wrong = [name for name, value in fields.items() if not _fits(name, value)]
    if wrong:
        raise ReportError(
            f"report event {kind!r}: {', '.join(f'{n}={fields[n]!r}' for n in wrong)}"
            f" has the wrong type; {_TYPE_HINT}"
        )
    if kind == "figure" and fields["name"] in COMPUTED_FIGURES:
        raise ReportError(f"figure name {fields['name']!r} is computed by the report; rename it")
