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


def test_every_readme_example_gives_path_options_with_equals() -> None:
    """`--history DIR` makes pytest take DIR for a test path (pytest-dev/pytest#8846): the
    README shows `--history=DIR` everywhere but where it says not to."""
    from harness.config import PATH_OPTIONS

    text = (ROOT / "README.md").read_text().replace("not\n`--history /shared/history`", "")
    flags = "|".join(re.escape(flag) for flag in sorted(PATH_OPTIONS))
    spaced = re.findall(rf"(?:{flags}) [^-\s|`]\S*", text)
    assert spaced == []
