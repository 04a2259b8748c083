"""Unit tests are offline by construction: any non-loopback connection or DNS lookup fails.

The ``azure`` fixture gives a test the fake of Azure ML (``azure_fake``) and an AzureBackend
wired to it, typed (``AzureRig``).
"""

from __future__ import annotations

import gc
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.azure_fake import AzureRig, fake_azure


class NetworkBlocked(RuntimeError):
    """A unit test tried to reach the network."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard_connect(original: Any) -> Any:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family != socket.AF_UNIX and not _is_loopback(address[0]):
            raise NetworkBlocked(f"unit tests must not use the network: connect to {address}")
        return original(self, address)

    return connect


def _guard_getaddrinfo(original: Any) -> Any:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(
            host.decode() if isinstance(host, bytes) else host
        ):
            raise NetworkBlocked(f"unit tests must not use the network: DNS lookup of {host}")
        return original(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture(autouse=True)
def _no_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guard_connect(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guard_connect(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", _guard_getaddrinfo(socket.getaddrinfo))
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    yield


# Young-generation size while unit tests run. The suite holds azure-ai-ml, MLflow, datasets and
# matplotlib in memory (about two million objects), and with CPython's default (700) the
# collector walked all of them some fifteen times a run: 3.5 s of a 20 s suite. With this
# threshold it collects young objects a tenth as often and the whole heap about once, for
# about 15 MB more peak memory (measured with gc.callbacks timing each collection, 2026-11).
_YOUNG_GENERATION = 20_000


def pytest_collection_finish(session: pytest.Session) -> None:
    """Tune the collector for a unit run only; the e2e suite and the faults keep the default.
    The threshold is kept until the process ends: setting the default back at the end made
    the collector sweep the whole heap once more, 0.5 s of each xdist worker's exit."""
    if any(item.get_closest_marker("unit") for item in session.items):
        gc.set_threshold(_YOUNG_GENERATION, 20, 20)


@pytest.fixture()
def azure() -> Iterator[AzureRig]:
    """A fake Azure ML workspace and registry, and a backend that talks to them."""
    with fake_azure() as rig:
        yield rig


@pytest.fixture(scope="session")
def report_modules_loaded() -> None:
    """For in-process pytester runs: the report's modules, imported before pytester snapshots
    sys.modules. A run unloads what it imported, so every run would import them (and compile
    the schema validator) again, and numpy (under matplotlib) cannot be imported a second time
    in one process once a run has unloaded it."""
    import importlib

    for name in (
        "jsonschema",
        "sacrebleu.metrics.chrf",
        "matplotlib.figure",
        "matplotlib.backends.backend_agg",
        "harness.report.write",
        "harness.report.markdown",
        "harness.report.webpage",
        "harness.report.plots",
        "harness.history",
        "harness.comparison",
        "harness.quality",
        "harness.verdict",
        "harness.data",
        "harness.scoring",
    ):
        importlib.import_module(name)
    from harness.report.schema import schema_problems

    schema_problems({})  # compiles the validator once


PNG_STAND_IN = b"\x89PNG\r\n\x1a\n plot drawn by test_report.py"


@pytest.fixture
def plots_drawn_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests of wiring that writes a report (the plugin, a suite against the fake): the
    plots, which test_report.py and test_history.py check, would cost matplotlib half a second
    per run."""
    from harness.report import plots

    monkeypatch.setattr(plots, "loss_png", lambda report: PNG_STAND_IN)
    monkeypatch.setattr(plots, "timeline_png", lambda report: PNG_STAND_IN)
    monkeypatch.setattr(plots, "trend_png", lambda report: PNG_STAND_IN)
