"""The history of runs: one report.json per finished run, indexed by model name and version.

Layout (``--history DIR``): ``DIR/<model name>/<model version>/<run id>.json``, the report
exactly as the run wrote it. The directory tree is the index: no index file to lock, merge or
repair, so concurrent nightlies (one per version, in a CI matrix) append without coordinating,
a history can be copied, pruned or restored with plain file tools, and a lost file loses one
run, not the history. Name parts outside ``[A-Za-z0-9._-]`` become ``_`` in paths; lookups
still match on the names inside the reports.

The history is the user's data. An entry is written atomically (a kill leaves the old tree or
the new one, never half a file), under a lock in the history directory so that two runs
adding the same run id at once (``--run-id`` given twice) both land: the later one takes the
next free name (``<run id>.2.json``), never the older entry's place. A file that is not a
readable report (cut, foreign, another tool's) is skipped with a warning naming it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.errors import ReportError
from harness.files import read_json, write_json
from harness.report.schema import validate_report

logger = logging.getLogger("harness")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
LAST = "last"
LOCK_FILE = ".history.lock"
LOCK_TIMEOUT_S = 60.0  # another run writes one file under it: milliseconds


def _component(text: str) -> str:
    safe = _UNSAFE.sub("_", text)
    return safe if safe.strip(".") else f"_{safe}"


def load_report(path: Path) -> dict[str, Any]:
    """A report.json, checked against the schema; ReportError says what is wrong with it."""
    report = read_json(path, ReportError)
    if not isinstance(report, dict):
        raise ReportError(
            f"{path} holds {type(report).__name__}, not a report object; pass a report.json file"
        )
    validate_report(report, str(path))
    return report


def append(report: Mapping[str, Any], history_dir: Path) -> Path | None:
    """Store a finished run's report; None (and a log line) when it never reached a model."""
    validate_report(report)
    model, run_id = report["model"], report["run"]["id"]
    if not model or not run_id:
        logger.info(
            "run not added to the history %s: it reached no model or has no run id", history_dir
        )
        return None
    folder = history_dir / _component(model["name"]) / _component(model["version"])
    history_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(history_dir / LOCK_FILE), timeout=LOCK_TIMEOUT_S):
        path = _free_name(folder, _component(run_id))
        write_json(path, report)
    logger.info("run %s added to the history: %s", run_id, path)
    return path


def _free_name(folder: Path, stem: str) -> Path:
    """``<stem>.json``, or the first ``<stem>.<n>.json`` not taken (called under the lock)."""
    path, number = folder / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}.{number}.json"
    return path


def reports(
    history_dir: Path, model_name: str | None = None, model_version: str | None = None
) -> list[dict[str, Any]]:
    """Readable reports of the history, oldest first; unreadable files are logged and skipped."""
    name = _component(model_name) if model_name else "*"
    version = _component(model_version) if model_version else "*"
    found = []
    for path in sorted(history_dir.glob(f"{name}/{version}/*.json")):
        try:
            report = load_report(path)
        except ReportError as exc:
            logger.warning("history entry skipped: %s", exc)
            continue
        model = report["model"] or {}
        if (model_name is None or model.get("name") == model_name) and (
            model_version is None or model.get("version") == model_version
        ):
            found.append(report)
    return sorted(found, key=lambda r: r["run"]["started_at"] or "")


def route_of(report: Mapping[str, Any]) -> str:
    """The fine-tuning route a run took, from the options its report recorded."""
    from harness.config import recorded_route

    return recorded_route(report.get("options") or {})


def passing(
    history_dir: Path,
    model_name: str,
    model_version: str | None = None,
    exclude_run_id: str | None = None,
    route: str | None = None,
) -> list[dict[str, Any]]:
    """Passing runs of a model (optionally one version, one route), oldest first."""
    return [
        r
        for r in reports(history_dir, model_name, model_version)
        if r["run"]["verdict"] == "passed"
        and r["run"]["id"] != exclude_run_id
        and route in (None, route_of(r))
    ]


def last_passing(
    history_dir: Path,
    model_name: str,
    exclude_run_id: str | None = None,
    route: str | None = None,
) -> dict[str, Any] | None:
    """The latest passing run of any version of ``model_name`` (on ``route`` when given: a
    serverless run is no baseline for a pipeline run), other than ``exclude_run_id``."""
    runs = passing(history_dir, model_name, exclude_run_id=exclude_run_id, route=route)
    return runs[-1] if runs else None


def baseline(
    spec: str,
    history_dir: Path,
    model_name: str,
    exclude_run_id: str | None = None,
    route: str | None = None,
) -> dict[str, Any] | None:
    """What ``--compare-to`` names: ``last`` (None when the history has no passing run of the
    model on that route yet) or the path of a report.json (ReportError when unreadable)."""
    if spec == LAST:
        return last_passing(history_dir, model_name, exclude_run_id, route)
    return load_report(Path(spec))
