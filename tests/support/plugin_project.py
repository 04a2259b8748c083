"""A pytester project running the e2e suite against the in-memory fake backend.

The plugin's own tests drive whole sessions through it: the unit suite in-process
(``tests/unit/test_plugin.py``), the fault suite in subprocesses it signals
(``tests/faults/test_plugin_processes.py``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_backend import read_events

REPO = Path(__file__).resolve().parents[2]
E2E_SUITE = REPO / "tests" / "e2e"
SUITE = 14  # tests in tests/e2e/test_workflow.py

CONFTEST = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
import pytest
from tests.support.fake_backend import FakeBackend
from harness.data import PreparedData


def pytest_harness_create_backend(harness_config):
    return FakeBackend()


@pytest.fixture(scope="session")
def training_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    row = {{"prompt": "Hi?", "prompt_id": "p1", "messages": [
        {{"role": "user", "content": "Hi?"}}, {{"role": "assistant", "content": "Hello."}}]}}
    files = {{}}
    for split in ("train_sft", "test_sft", "train_gen", "test_gen"):
        files[split] = str(out / f"{{split}}.jsonl")
        (out / f"{{split}}.jsonl").write_text((json.dumps(row) + "\\n") * 3)
    return PreparedData(str(out), files, {{s: 1 for s in files}}, [])
"""


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each run's own workspace (where its liveness mark and shared state live), no Azure
    settings from the caller, and no plugins but those a run names."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = tmp_path_factory.mktemp("workspace")
    monkeypatch.setenv("HARNESS_WORKSPACE", str(path))
    return path


def make_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with the e2e suite and the fake backend; returns its events file."""
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_ML_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HARNESS_REQUIRE_LIVE", raising=False)
    pytester.makeini("[pytest]\n")  # the suite runs with its configuration file
    pytester.makeconftest(CONFTEST)
    suite = pytester.mkdir("e2e")  # the suite under another module name than the original's
    shutil.copy(E2E_SUITE / "conftest.py", suite / "conftest.py")
    shutil.copy(E2E_SUITE / "test_workflow.py", suite / "test_acceptance_copy.py")
    path = pytester.path / "events.jsonl"
    monkeypatch.setenv("HARNESS_FAKE_EVENTS", str(path))
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """In-process run with only the plugins it needs and one-line tracebacks (fast)."""
    return pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "--tb=line", *args)


def leftovers(workspace: Path) -> list[Path]:
    """What a finished run left in the workspace's runs directory (nothing, if all is well)."""
    return sorted((workspace / "runs").glob("*")) if (workspace / "runs").exists() else []


def balance(path: Path) -> Counter[str]:
    """creates minus deletes per kind: all zeros means nothing leaked."""
    counts: Counter[str] = Counter()
    for event in read_events(path):
        if event["kind"] != "deployment":  # deleted with its endpoint
            counts[event["kind"]] += {"create": 1, "delete": -1}.get(event["event"], 0)
    return counts


def created(path: Path) -> Counter[str]:
    return Counter(e["kind"] for e in read_events(path) if e["event"] == "create")


def report(pytester: pytest.Pytester) -> dict[str, Any]:
    return dict(json.loads((pytester.path / "harness-report" / "report.json").read_text()))


def start_and_wait_for(pytester: pytest.Pytester, events: Path, kind: str) -> Any:
    """A pytest subprocess, once the fake backend sleeps in step ``kind``."""
    process = pytester.popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "harness.plugin"], stdin=-1
    )
    wait_for_event(process, events, kind)
    return process


def wait_for_event(process: Any, events: Path, kind: str) -> None:
    deadline = time.monotonic() + 20
    while not any(e["event"] == "sleeping" and e["kind"] == kind for e in read_events(events)):
        assert time.monotonic() < deadline and process.poll() is None, process.stdout.read()
        time.sleep(0.05)
