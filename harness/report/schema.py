"""report.json's schema (``schema.json`` beside this file) and the check that a report fits it.

The schema is the documentation: every field has a description there. Reports are read back
by later runs (the history, ``python -m harness compare``), so a report of another schema
version is refused with a clear message rather than compared field by field by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from harness.errors import ReportError

SCHEMA_VERSION = 1
_SHOWN_ERRORS = 5


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json."""
    text = resources.files("harness.report").joinpath("schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def schema_problems(report: Mapping[str, Any]) -> list[str]:
    """Where ``report`` breaks the schema, as ``path: message`` lines (empty: it fits)."""
    version = report.get("schema_version") if isinstance(report, Mapping) else None
    if isinstance(report, Mapping) and version != SCHEMA_VERSION:
        return [
            f"schema_version is {version!r}; this harness reads {SCHEMA_VERSION}: compare "
            "reports written by the same harness version, or upgrade the harness"
        ]
    errors = sorted(_validator().iter_errors(report), key=lambda e: [str(part) for part in e.path])
    return [f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message[:200]}" for e in errors]


def validate_report(report: Mapping[str, Any], source: str = "report") -> None:
    """Raise ReportError naming every place (up to five) where ``report`` breaks the schema."""
    problems = schema_problems(report)
    if problems:
        raise ReportError(
            f"{source} does not fit the report schema ({len(problems)} "
            f"problem(s)): {'; '.join(problems[:_SHOWN_ERRORS])}; regenerate it "
            "with this harness version"
        )
