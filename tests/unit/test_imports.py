"""Loading the plugin stays cheap: the heavy libraries load inside the backend that needs them,
and the report's plotting and metric libraries load only when a report is written."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "azure.ai.ml",
    "torch",
    "transformers",
    "peft",
    "mlflow",
    "datasets",
    "matplotlib",
    "sacrebleu",
    "jsonschema",
]
# what the plugin imports, or will import once the report is wired in
MODULES = [
    "harness.plugin",
    "harness.__main__",
    "harness.report",
    "harness.history",
    "harness.comparison",
    "harness.versions",
    "harness.quality",
]


def test_importing_the_plugin_imports_no_heavy_library() -> None:
    probe = (
        f"import json, sys, {', '.join(MODULES)}; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
