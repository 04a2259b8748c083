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


# The rules a training rank and a server share with the harness: pure modules of the standard
# library only (errors, the atomic file write, parameter coercion, the chat-completion shape),
# the job's files and the model's MLflow layout, and the job status vocabulary of base.py.
SHARED = {
    "harness",
    "harness.backends",
    "harness.backends.local",
    "harness.errors",
}
RANK = SHARED | {
    "harness.files",
    "harness.finetune_params",
    "harness.backends.base",
    "harness.backends.local.job_files",
    "harness.backends.local.mlflow_model",
    "harness.backends.local.offline",
}
SERVER = SHARED | {"harness.scoring", "harness.backends.local.mlflow_model"}


def harness_modules_after(*modules: str) -> tuple[set[str], bool]:
    """The harness modules (and whether psutil) a fresh interpreter holds after these imports.

    transformers is a stub with the one name the trainer callback subclasses: the real one takes
    many seconds to import and brings psutil of its own; what the harness imports is the same.
    """
    probe = (
        "import types, sys; stub = types.ModuleType('transformers'); "
        "stub.TrainerCallback = object; sys.modules['transformers'] = stub; "
        f"import json, {', '.join(modules)}; "
        "print(json.dumps([m for m in sys.modules if m == 'harness' or m.startswith('harness.')"
        " or m == 'psutil']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    found = set(json.loads(out))
    return found - {"psutil"}, "psutil" in found


def test_a_training_rank_imports_nothing_of_the_harness_process() -> None:
    package = "harness.backends.local.training"
    own = [f"{package}.{m}" for m in ("__main__", "finetune", "metrics", "tiny_model")]
    found, psutil = harness_modules_after(*own)
    assert {m for m in found if not m.startswith(package)} == RANK
    assert not psutil  # the harness's process bookkeeping stays in the harness


def test_a_server_imports_nothing_of_the_harness_process() -> None:
    package = "harness.backends.local.server"
    own = [f"{package}.{m}" for m in ("contract", "generator", "score", "__main__")]
    found, psutil = harness_modules_after(*own)
    assert {m for m in found if not m.startswith(package)} == SERVER
    assert not psutil


def test_an_azure_job_poll_that_asks_no_training_progress_imports_no_mlflow() -> None:
    """Importing MLflow takes seconds (10 s on a loaded machine): inside a job's wait, a poll
    before the progress is due must not pay it, or a short deadline is gone at the first poll."""
    probe = (
        "import json, sys\n"
        "from harness.backends.azure.metrics import TrainingProgress\n"
        "from harness.backends.base import JobRun\n"
        "job = JobRun('j', 'd', 'Running', 'https://ml.azure.com/runs/j')\n"
        "progress = TrainingProgress(lambda: None, 'exp', job, every_s=120)\n"
        "progress.say(); progress.say(final=True)\n"
        "print(json.dumps('mlflow' in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) is False
