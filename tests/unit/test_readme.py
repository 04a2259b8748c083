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
    assert tests.startswith("scripts/setup.sh && ") and tests.endswith("pytest -m unit -n 2")


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for command in readme_commands():
        setup, _, pytest_command = command.partition(" && ")
        assert setup in ci
        assert pytest_command in ci, f"CI does not run the README's {pytest_command!r}"


def registered_fixtures() -> list[str]:
    """The fixtures harness/fixtures.py registers, read from its source (no plugin loaded)."""
    import ast

    tree = ast.parse((ROOT / "harness" / "fixtures.py").read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    ]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_fixtures_table_lists_every_fixture_once_with_its_scope() -> None:
    row = r"^\| `(\w+)` \| (.+?) \| (\w+) \| (.+?) \|$"
    rows = re.findall(row, readme_section("Fixtures"), re.M)
    assert [name for name, *_ in rows] == registered_fixtures()
    source = (ROOT / "harness" / "fixtures.py").read_text()
    for name, yields, scope, override in rows:
        assert f'@pytest.fixture(scope="{scope}")\ndef {name}(' in source, name
        assert yields.strip() and override.strip()
    assert "pytest_harness_create_backend" in readme_section("Fixtures")


def test_the_contents_link_every_section() -> None:
    text = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    links = re.findall(r"^- \[.+?\]\(#(.+?)\)$", readme_section("Contents"), re.M)
    anchors = [re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings]
    assert links == [a for a in anchors if a != "contents"]


def test_the_quick_gate_runs_what_ci_checks_first() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    gate = (ROOT / "scripts" / "check.sh").read_text()
    for step in (
        ".venv/bin/ruff check harness tests benchmarks tools",
        ".venv/bin/ruff format --check harness tests benchmarks tools",
        "scripts/typecheck.sh",
        ".venv/bin/python -m pytest -m unit",
    ):
        assert step in ci and step in gate, step


def test_every_readme_example_gives_path_options_with_equals() -> None:
    """`--history DIR` makes pytest take DIR for a test path (pytest-dev/pytest#8846): the
    README shows `--history=DIR` everywhere but where it says not to."""
    from harness.config import PATH_OPTIONS

    text = (ROOT / "README.md").read_text().replace("not\n`--history /shared/history`", "")
    flags = "|".join(re.escape(flag) for flag in sorted(PATH_OPTIONS))
    spaced = re.findall(rf"(?:{flags}) [^-\s|`]\S*", text)
    assert spaced == []
