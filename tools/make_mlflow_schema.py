"""Writes harness/resources/mlflow_store/<revision>.sql: an empty MLflow store as MLflow's own
migrations leave it, for the local backend to create a fresh workspace's store from.

A new workspace's store used to be made by MLflow itself: its initial tables, then some fifty
Alembic migrations, each rebuilding SQLite tables (1 to 2.5 s of a core, every fresh
workspace). The result depends only on MLflow's migration scripts, which its schema revision
names, so this script runs them once, exactly as MLflow's store does on an empty database,
and dumps the result as SQL text. The store then adds its default experiment itself, with
that workspace's paths, when it opens the copy. Run it after the lock file moves MLflow to a
new schema revision (the unit suite fails until then, naming this script):

    python tools/make_mlflow_schema.py [--out DIRECTORY]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "harness" / "resources" / "mlflow_store"


def migrated_schema() -> tuple[str, str]:
    """(schema revision, SQL text) of a store that MLflow created and migrated just now."""
    import sqlalchemy
    from mlflow.store.db import utils

    with tempfile.TemporaryDirectory(prefix="harness-mlflow-schema-") as scratch:
        path = Path(scratch) / "mlflow.db"
        engine = sqlalchemy.create_engine(f"sqlite:///{path}")
        try:
            # What SqlAlchemyStore.__init__ runs on an empty database (before it adds the
            # default experiment): the initial tables, then every migration to the head.
            utils._initialize_tables(engine)
            revision = str(utils._get_schema_version(engine))
        finally:
            engine.dispose()
        with contextlib.closing(sqlite3.connect(path)) as db:
            text = "\n".join(db.iterdump()) + "\n"
    return revision, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory to write")
    out = parser.parse_args().out
    revision, text = migrated_schema()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.sql"):
        stale.unlink()  # one schema: the installed MLflow's
    (out / f"{revision}.sql").write_text(text)
    print(f"wrote {out / f'{revision}.sql'} ({len(text)} characters)")


if __name__ == "__main__":
    main()
