"""The local workspace's first use: parallel workers must not race on the database migration."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from harness.backends.local.workspace import Workspace


class MigratingClient:
    """Stands in for MlflowClient, whose constructor creates and migrates the database."""

    building = 0
    overlapped = False
    guard = threading.Lock()

    def __init__(self, tracking_uri: str, registry_uri: str) -> None:
        with MigratingClient.guard:
            MigratingClient.building += 1
            MigratingClient.overlapped |= MigratingClient.building > 1
        time.sleep(0.2)  # MLflow's migration takes seconds
        with MigratingClient.guard:
            MigratingClient.building -= 1

    def search_experiments(self, **kwargs: Any) -> list[Any]:
        return []

    def search_registered_models(self, **kwargs: Any) -> list[Any]:
        return []


def test_two_workers_on_a_fresh_workspace_migrate_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("mlflow.tracking")
    fake.MlflowClient = MigratingClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow.tracking", fake)
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    ws = Workspace.at(tmp_path)
    workers = [threading.Thread(target=lambda: ws.client()) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not MigratingClient.overlapped
    assert (tmp_path / ".mlflow-initialised").exists()
