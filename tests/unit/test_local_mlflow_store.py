"""A fresh workspace's MLflow store comes from the shipped schema, which is what MLflow's own
migrations make for the installed MLflow; without a schema for it, MLflow migrates."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest

from harness.backends.local import mlflow_store
from harness.backends.local.workspace import Workspace
from tests.support.tools import load_tool

REGENERATE = "run python tools/make_mlflow_schema.py"


def canonical(sql: str) -> list[tuple[str, ...]]:
    """The database a script makes, as comparable values: each schema entry with its lines
    sorted (SQLAlchemy emits a table's constraints, and MLflow's migrations its indexes, in
    an order that varies between processes), and each table's rows."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(sql)
        entries = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        found = []
        for kind, name, text in entries:
            lines = sorted(line.strip().rstrip(",").strip() for line in (text or "").splitlines())
            found.append((kind, name, *lines))
            if kind == "table":
                rows = db.execute(f'SELECT * FROM "{name}"').fetchall()
                found.append(("rows", name, *sorted(map(repr, rows))))
    return found


def test_a_schema_is_shipped_for_the_installed_mlflow_and_no_other() -> None:
    revision = mlflow_store.installed_revision()
    assert mlflow_store.shipped_schema(revision) is not None, (
        f"no MLflow schema is shipped for revision {revision}: {REGENERATE}"
    )
    assert [p.name for p in mlflow_store.SCHEMAS.glob("*.sql")] == [f"{revision}.sql"]


def test_the_shipped_schema_is_what_mlflows_migrations_make(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    revision, made = load_tool("make_mlflow_schema", monkeypatch).migrated_schema()
    shipped = mlflow_store.shipped_schema(revision)
    assert shipped is not None, f"no MLflow schema is shipped for revision {revision}: {REGENERATE}"
    assert canonical(shipped.read_text()) == canonical(made), f"{shipped} is stale: {REGENERATE}"


def test_a_fresh_workspace_gets_its_store_without_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow opens the copy as its own (schema revision checked), adds the default experiment
    and takes the workspace's experiments; nothing of the creation is left beside it."""
    from mlflow.store.db import utils

    def no_migrations(engine: object) -> None:
        raise AssertionError("MLflow migrated a store created from the shipped schema")

    monkeypatch.setattr(utils, "_initialize_tables", no_migrations)
    ws = Workspace.at(tmp_path / "ws")
    client = ws.client()
    assert client.get_experiment("0").name == "Default"
    experiment = ws.experiment_id("chat_completion_tiny")
    assert client.get_experiment(experiment).artifact_location == (
        (ws.artifacts / "chat_completion_tiny").as_uri()
    )
    left = sorted(p.name for p in ws.root.iterdir())
    assert left == [".mlflow-initialised", "locks", "mlflow.db"]


def test_without_a_schema_for_the_installed_mlflow_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mlflow_store, "installed_revision", lambda: "0123456789ab")
    with caplog.at_level(logging.INFO, logger="harness"):
        assert mlflow_store.create_from_schema(tmp_path / "mlflow.db") is False
    assert list(tmp_path.iterdir()) == []
    assert "MLflow creates the store" in caplog.text


def test_a_schema_that_does_not_load_leaves_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "0123456789ab.sql").write_text("CREATE TABLE broken (;\n")
    monkeypatch.setattr(mlflow_store, "SCHEMAS", schemas)
    monkeypatch.setattr(mlflow_store, "installed_revision", lambda: "0123456789ab")
    store = tmp_path / "ws" / "mlflow.db"
    store.parent.mkdir()
    assert mlflow_store.create_from_schema(store) is False
    assert list(store.parent.iterdir()) == []
    assert "0123456789ab.sql failed" in caplog.text and "MLflow creates it" in caplog.text


def test_what_a_killed_creation_left_is_removed_by_the_next(tmp_path: Path) -> None:
    """A creation killed (SIGKILL) before its rename leaves only its scratch file; the next
    creation, under the same lock, removes it and makes the store."""
    store = tmp_path / "mlflow.db"
    left = tmp_path / ".mlflow.db.0badf00d.creating"
    left.write_bytes(b"SQLite format 3\0 cut short")
    assert mlflow_store.create_from_schema(store) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
    with contextlib.closing(sqlite3.connect(store)) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == mlflow_store.installed_revision()
