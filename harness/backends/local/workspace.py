"""The local workspace: one directory with the MLflow store, artifacts and state files, and the
check that a directory can hold it (run at start-up, before anything is created).

The tracking store and the model registry share one SQLite database, as the registry and the
job history share one workspace on Azure. Creating the database (from the shipped schema, see
mlflow_store; by MLflow's migrations, seconds, without one) must happen once, even when several
pytest-xdist workers start at the same moment, hence the file lock around first-time
initialisation.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from harness.backends.local import mlflow_store
from harness.errors import ConfigError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from harness.config import HarnessConfig

LOCK_TIMEOUT_S = 600.0
logger = logging.getLogger("harness")


def workspace_problem(path: Path) -> str | None:
    """Why the local workspace cannot live at ``path``, or None; leaves nothing behind.

    The deepest part of the path that exists must be a directory this process can create
    files in. That is tried, not read from permission bits, which say nothing about root or
    a read-only mount.
    """
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        return f"{existing} cannot be inspected ({exc.strerror or exc})"
    if not is_dir:
        return f"{existing} is a file, not a directory"
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".harness-probe-").cleanup()
    except OSError as exc:
        return f"{existing} is not writable ({exc.strerror or exc})"
    return None


def check_workspace_dir(path: Path, source: str | None = None) -> None:
    """ConfigError naming --workspace (and where the value came from) when ``path`` cannot
    hold the local workspace."""
    _check_dir(path, source, "the local workspace", "--workspace", "HARNESS_WORKSPACE")


def check_model_cache_dir(path: Path, source: str | None = None) -> None:
    """ConfigError naming --model-cache when the machine's model cache cannot live at ``path``."""
    _check_dir(path, source, "the model cache", "--model-cache", "HARNESS_MODEL_CACHE")


def _check_dir(path: Path, source: str | None, what: str, flag: str, env: str) -> None:
    problem = workspace_problem(path)
    if problem:
        example = Path(tempfile.gettempdir()) / f"harness-{flag.lstrip('-')}"
        where = f"{source}: " if source else ""
        raise ConfigError(
            f"{where}{what} {path} cannot be used: {problem}; pass {flag} "
            f"(or set {env}) with a directory you can write, e.g. {example}"
        )


def check_workspace(cfg: HarnessConfig) -> None:
    """The local backend's directories, checked at start-up (the Azure backend has none)."""
    if cfg.backend == "local":
        check_workspace_dir(cfg.workspace_dir, cfg.sources.get("workspace_dir"))
        check_model_cache_dir(cfg.model_cache_dir, cfg.sources.get("model_cache_dir"))


@dataclass(frozen=True)
class Workspace:
    """Paths inside the workspace directory, and the MLflow client bound to it."""

    root: Path

    @classmethod
    def at(cls, root: Path) -> Workspace:
        """The workspace at ``root``, created; ConfigError naming --workspace when it cannot be."""
        root = root.expanduser().resolve()
        check_workspace_dir(root)
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    @property
    def store(self) -> Path:
        """The MLflow tracking and registry store, one SQLite file."""
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.store}"

    @property
    def has_store(self) -> bool:
        """Whether the MLflow store exists: without it, nothing was ever run or registered."""
        return self.store.exists()

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints"

    @property
    def builds(self) -> Path:
        return self.root / "builds"

    @property
    def caches(self) -> Path:
        """Compiler caches shared by the workspace's runs (kept by the sweep: a cache)."""
        return self.root / "caches"

    def lock(self, name: str) -> FileLock:
        """A named inter-process lock in the workspace (xdist workers share the workspace)."""
        locks = self.root / "locks"
        locks.mkdir(exist_ok=True)
        return FileLock(str(locks / f"{name}.lock"), timeout=LOCK_TIMEOUT_S)

    def client(self) -> MlflowClient:
        return _client(self.root, self.tracking_uri)

    def warm_up(self) -> None:
        """Import MLflow and open its tracking and registry stores (seconds: the import,
        then a schema check per store), so that the first real call is quick. It runs in a
        background thread: a failure here (a store another process is creating, a run
        ending) is the first real call's to report, never a thread's traceback."""
        try:
            self.client().search_registered_models(max_results=1)
        except Exception as exc:  # best effort: the real call says what is wrong
            logger.debug("opening the MLflow store %s in advance failed: %s", self.root, exc)

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created with its artifacts inside the workspace."""
        client = self.client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        with self.lock("experiments"):
            found = client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            location = (self.artifacts / name).as_uri()
            return str(client.create_experiment(name, artifact_location=location))


@functools.cache
def _client(root: Path, uri: str) -> MlflowClient:
    """One client per workspace and process. On a fresh workspace the database is created
    (from the shipped schema, see mlflow_store, or by MLflow's migrations) and the first
    client built under the lock: parallel workers would otherwise race on its creation
    (``_alembic_tmp_*`` already exists)."""
    from mlflow.tracking import MlflowClient

    marker = root / ".mlflow-initialised"
    if marker.exists():
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    ws = Workspace(root)
    with ws.lock("init"):
        if not ws.has_store:
            mlflow_store.create_from_schema(ws.store)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
        marker.touch()
    return client
