"""The README's two opening commands are what CI runs: keep them true together."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_opens_with_the_main_job_then_the_tests() -> None:
    main_job, tests = readme_commands()
    assert main_job.startswith("scripts/setup.sh && ") and main_job.endswith("pytest -m e2e")
    assert tests.startswith("scripts/setup.sh && ") and tests.endswith("pytest -m unit")


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for command in readme_commands():
        setup, _, pytest_command = command.partition(" && ")
        assert setup in ci
        assert pytest_command in ci, f"CI does not run the README's {pytest_command!r}"
