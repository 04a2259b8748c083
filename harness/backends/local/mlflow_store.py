"""A fresh workspace's MLflow store, created from the shipped schema instead of by migrating.

MLflow creates an empty SQLite store by running its initial DDL and then some fifty Alembic
migrations, each rebuilding tables: 1 to 2.5 s of a core for every new workspace (each unit
test of the sweep, each fault test, a first nightly). What they produce depends only on the
migration scripts, which MLflow's schema revision names, so ``tools/make_mlflow_schema.py``
runs them once and ships the result as SQL text, ``resources/mlflow_store/<revision>.sql``.
A store is created from it only when that revision is the installed MLflow's; otherwise (an
MLflow outside the lock file) MLflow migrates as before. The store adds its default
experiment itself when it first opens the copy, with this workspace's paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import uuid
from pathlib import Path

from harness.config import RESOURCES

logger = logging.getLogger("harness")
SCHEMAS = RESOURCES / "mlflow_store"


def installed_revision() -> str | None:
    """The schema revision the installed MLflow expects, or None when it cannot be read."""
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision
    except ImportError:
        return None
    # Private, but it is what MLflow's store calls on every open to refuse a database of
    # another revision ("Detected out-of-date database schema"), so the two cannot disagree.
    return str(_get_latest_schema_revision())  # type: ignore[no-untyped-call]


def shipped_schema(revision: str | None) -> Path | None:
    """The shipped schema of ``revision``, or None when none is shipped for it."""
    path = SCHEMAS / f"{revision}.sql"
    return path if revision and path.is_file() else None


def create_from_schema(store: Path) -> bool:
    """Create the empty store at ``store`` from the shipped schema of the installed MLflow's
    revision; False, with nothing created, when there is none (MLflow then migrates).

    The caller holds the workspace's init lock. The database is written beside ``store`` and
    renamed into place, so a crash leaves no half-made store for MLflow to trip over; what a
    killed creation left beside it is removed here (under the lock, no other is running).
    """
    for stale in store.parent.glob(f".{store.name}.*.creating"):
        stale.unlink(missing_ok=True)
    schema = shipped_schema(installed_revision())
    if schema is None:
        logger.info("no shipped MLflow schema for this MLflow; MLflow creates the store")
        return False
    scratch = store.with_name(f".{store.name}.{uuid.uuid4().hex[:8]}.creating")
    try:
        with contextlib.closing(sqlite3.connect(scratch)) as db:
            db.executescript(schema.read_text())
        os.replace(scratch, store)
    except (OSError, sqlite3.Error) as exc:
        logger.warning(
            "creating the MLflow store from %s failed (%s); MLflow creates it", schema, exc
        )
        return False
    finally:
        scratch.unlink(missing_ok=True)
    return True
