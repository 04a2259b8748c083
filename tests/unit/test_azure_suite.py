"""The unchanged e2e suite, run through the plugin against ``--backend azure`` and the
``responses`` fake of Azure ML: the nightly run, proven offline, failure paths included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
SHIPPED = HERE.parents[1] / "harness" / "resources" / "ultrachat_mini"
ARGS = ["--backend", "azure", "--azure-subscription-id", "00000000-0000-4000-8000-000000000000",
        "--azure-resource-group", "rg-harness", "--azure-workspace", "ws-harness",
        "--dataset", str(SHIPPED), "--dataset-percent", "100", "-p", "no:cacheprovider"]

CONFTEST = f"""
import os, sys
sys.path.insert(0, {str(HERE)!r})
import responses
from azure_fake import FakeAzureML, make_backend

MOCK = responses.RequestsMock(assert_all_requests_are_fired=False)
FAKES = []


def pytest_configure(config):
    MOCK.start()


def pytest_unconfigure(config):
    for fake in FAKES:
        fake.settle()
    MOCK.stop()
    MOCK.reset()


def pytest_harness_create_backend(harness_config):
    if not FAKES:
        fake = FakeAzureML(MOCK, harness_config)
        FAKES.append(fake)
    return make_backend(harness_config, FAKES[0])


def pytest_sessionfinish(session):
    fake = FAKES[0]
    with open("requests.log", "w") as out:
        for call in fake.requests:
            out.write(f"{{call.method}} {{call.route}} {{call.url}}\\n")
        for call in fake.unmatched:
            out.write(f"UNMATCHED {{call.method}} {{call.url}}\\n")
"""


SCENARIOS = {
    "passes": {},
}  # failure paths: test_azure_*.py on the backend, test_plugin.py through the fixture chain


@dataclass
class Run:
    stdout: str
    ret: int
    sent: list[str]


Started = dict[str, tuple[Path, "subprocess.Popen[str]"]]
STARTED = pytest.StashKey[Started]()


def start_scenarios(root: Path) -> Started:
    """Every scenario in its own pytest process, all at once. azure-ai-ml is slow to import,
    and an in-process pytester run leaves importlib.metadata unable to find packages; the
    unit conftest starts these at collection so they overlap the rest of the suite."""
    return {name: _start(root / name, env) for name, env in SCENARIOS.items()}


def stop_scenarios(started: Started, root: Path) -> None:
    """Nothing outlives the session, even when the tests that wait for them did not run."""
    for _, process in started.values():
        if process.poll() is None:
            process.kill()
        process.communicate()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, Run]:
    started = request.config.stash.get(STARTED, None)
    if started is None:
        started = start_scenarios(tmp_path_factory.mktemp("scenarios"))
    return {name: _finish(folder, process) for name, (folder, process) in started.items()}


def _start(folder: Path, env: dict[str, str]) -> tuple[Path, subprocess.Popen[str]]:
    folder.mkdir(parents=True)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "e2e").mkdir()
    shutil.copy(E2E / "conftest.py", folder / "e2e" / "conftest.py")
    shutil.copy(E2E / "test_workflow.py", folder / "e2e" / "test_azure_copy.py")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir",
               str(folder), "-c", os.devnull, *ARGS]
    return folder, subprocess.Popen(command, cwd=folder, env={**os.environ, **env}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(folder: Path, process: subprocess.Popen[str]) -> Run:
    stdout, _ = process.communicate(timeout=120)
    log = folder / "requests.log"
    return Run(stdout, process.returncode, log.read_text().splitlines() if log.exists() else [])


def endpoint_deleted(lines: list[str]) -> bool:
    return any(line.startswith("DELETE") and "/onlineEndpoints/" in line for line in lines)


def test_the_e2e_suite_passes_against_the_fake_service(runs: dict[str, Run]) -> None:
    run = runs["passes"]
    assert "12 passed, 2 skipped" in run.stdout, run.stdout  # no likelihood, no --compare-to
    assert not [line for line in run.sent if line.startswith("UNMATCHED")]
    assert endpoint_deleted(run.sent)
