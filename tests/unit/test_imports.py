"""Loading the plugin stays cheap: the heavy libraries load inside the backend that needs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit
HEAVY = ["azure.ai.ml", "torch", "transformers", "peft", "mlflow", "datasets"]


def test_importing_the_plugin_imports_no_heavy_library() -> None:
    probe = ("import json, sys, harness.plugin, harness.__main__; "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []
