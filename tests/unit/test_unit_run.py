"""How this repository runs its own unit suite (the root conftest.py): under pytest-xdist each
worker is handed whole modules, unless the command line or ``PYTEST_ADDOPTS`` chose ``--dist``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import conftest as root  # the repository's root conftest.py, as pytest imported it


def configured(*args: str) -> Any:
    """A configuration as the root conftest's ``pytest_configure`` leaves it, for ``args``."""
    markexpr = args[args.index("-m") + 1] if "-m" in args else ""
    config = SimpleNamespace(
        option=SimpleNamespace(markexpr=markexpr, log_cli_level="INFO"),
        stash=pytest.Stash(),
        invocation_params=SimpleNamespace(args=args),
    )
    root.pytest_configure(config)  # type: ignore[arg-type]
    return config


def test_a_unit_run_hands_out_whole_modules_unless_dist_is_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    assert root.hands_out_whole_modules(configured("-m", "unit", "-n", "2"))
    for chosen in (("--dist", "load"), ("--dist=worksteal",), ("-d",)):
        assert not root.hands_out_whole_modules(configured("-m", "unit", "-n", "2", *chosen))
    assert not root.hands_out_whole_modules(configured("-m", "e2e", "-n", "2"))
    assert not root.hands_out_whole_modules(configured("-n", "2"))
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:cacheprovider --dist load")
    assert not root.hands_out_whole_modules(configured("-m", "unit", "-n", "2"))
