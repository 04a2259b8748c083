"""The report's key figures as JUnit test-suite properties (``record_testsuite_property``).

CI systems that only read JUnit XML still get the verdict and the figures a nightly gates on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.report.text import KEY_FIGURES

PREFIX = "harness_"


def junit_properties(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs: verdict, its reason and failure class, run id, model, and every
    figure that has a value."""
    run, model = report["run"], report["model"]
    properties = [
        ("verdict", run["verdict"]),
        ("verdict_reason", run.get("verdict_reason") or ""),
        ("failure_class", run.get("failure_class") or ""),
        ("run_id", run["id"] or ""),
        ("backend", run["backend"] or ""),
    ]
    if model:
        properties.append(("model", f"{model['name']}:{model['version']}"))
    figures = report["figures"]
    names = [n for n in KEY_FIGURES if n in figures] + sorted(set(figures) - set(KEY_FIGURES))
    properties += [
        (name, f"{figures[name]['value']:.6g}")
        for name in names
        if figures[name]["value"] is not None
    ]
    if report["quality_metric"]:
        properties.append(("quality_metric", report["quality_metric"]))
    return [(PREFIX + name, value) for name, value in properties]
