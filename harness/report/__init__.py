"""The run report: events recorded by every process of a run -> report.json, plots, Markdown
and one self-contained HTML page.

Usage (the plugin wires it): every process appends events with ``Recorder(path).record(...)``;
at the end one process calls ``report_from_events(path, out_dir)``. Importing this package is
cheap: matplotlib, jsonschema and the metric library load only when a report is built or
written.
"""

from __future__ import annotations

from harness.report.build import build_report
from harness.report.events import EVENT_KINDS
from harness.report.junit import junit_properties
from harness.report.recorder import Recorder, library_versions, read_events
from harness.report.schema import SCHEMA_VERSION, schema, validate_report
from harness.report.write import FILES, report_from_events, write_report

__all__ = [
    "EVENT_KINDS",
    "FILES",
    "SCHEMA_VERSION",
    "Recorder",
    "build_report",
    "junit_properties",
    "library_versions",
    "read_events",
    "report_from_events",
    "schema",
    "validate_report",
    "write_report",
]
