"""The machine's cache of the built default model, shared by every workspace on it.

The tiny model's bytes depend only on its recipe (the builder's code and constants), the shipped
data and the libraries that train and save it, and building it costs about 30 s of two cores.
So it is built once per machine and key, then copied (3 MB) into each workspace's registry,
where it is loaded like any registered model. The key is a hash of all of that, so a change of
recipe, data or library version builds a new entry; a CI job keeps the directory between nights
under that key (``python -m harness model-cache`` prints both).

An entry is complete or absent: it is built in a scratch directory and renamed into place
under a file lock per key, so concurrent runs (xdist workers, other workspaces) build it once.
Its manifest lists every file's SHA-256, checked before each use: a damaged entry is rebuilt.
The sweep removes entries of other keys once unused for longer than the resources' lifetime.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout

from harness.backends.local.workspace import check_model_cache_dir
from harness.errors import HarnessError
from harness.waiting import Deadline, Heartbeat

logger = logging.getLogger("harness")
LOCK_TIMEOUT_S = 900.0  # a build's own deadline (models.BUILD_TIMEOUT_S) and some margin
MANIFEST = "manifest.json"
LAST_USED = "last-used"
SCRATCH_PREFIX = ".building-"
PACKAGE = Path(__file__).resolve().parent
# What the built bytes depend on besides the data: the builder and the code it calls to
# encode conversations and to save the MLflow model, and the libraries that do the work.
RECIPE_SOURCES = (
    PACKAGE / "training" / "tiny_model.py",
    PACKAGE / "training" / "chat_data.py",
    PACKAGE / "mlflow_model.py",
)
RECIPE_DISTRIBUTIONS = (
    "torch",
    "transformers",
    "tokenizers",
    "trl",
    "accelerate",
    "datasets",
    "safetensors",
    "pyarrow",
    "numpy",
    "mlflow-skinny",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Recipe:
    """What the built bytes depend on (``material``, kept in the manifest to explain a
    rebuild) and its short hash, the cache's key and the registry's recipe tag."""

    material: dict[str, object]

    @property
    def key(self) -> str:
        text = json.dumps(self.material, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def recipe(dataset: Path) -> Recipe:
    """The recipe of the model built from ``dataset`` with the installed libraries."""
    data = dataset / "data"
    return Recipe(
        {
            "sources": {p.name: _sha256(p) for p in RECIPE_SOURCES},
            "data": {p.name: _sha256(p) for p in sorted(data.glob("*")) if p.is_file()},
            "libraries": {name: metadata.version(name) for name in RECIPE_DISTRIBUTIONS},
            "python": ".".join(platform.python_version_tuple()[:2]),
            "machine": platform.machine(),
        }
    )


def _files(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): _sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class ModelCache:
    """Entries ``<root>/<name>-<key>/`` holding ``model/`` (an MLflow model) and a manifest."""

    root: Path

    def entry(self, name: str, key: str) -> Path:
        return self.root / f"{name}-{key}"

    def lock(self, name: str, key: str) -> FileLock:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{name}-{key}.lock"), timeout=LOCK_TIMEOUT_S)

    def intact(self, entry: Path) -> bool:
        """Whether every file the manifest lists is there with its recorded bytes."""
        try:
            listed = json.loads((entry / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return bool(listed) and _files(entry / "model") == listed

    def provide(self, name: str, recipe: Recipe, out: Path, build: Callable[[Path], None]) -> bool:
        """Copy the entry's model to ``out``, building the entry first when it is missing or
        damaged (``build`` writes an MLflow model to the path it is given); True when an
        existing build was reused."""
        check_model_cache_dir(self.root)
        entry = self.entry(name, recipe.key)
        with _held(self.lock(name, recipe.key), f"the model cache's build of {name} ({entry})"):
            reused = self.intact(entry)
            if not reused:
                self._build(entry, recipe, build)
            (entry / LAST_USED).touch()
            shutil.copytree(entry / "model", out)
        return reused

    def _build(self, entry: Path, recipe: Recipe, build: Callable[[Path], None]) -> None:
        if entry.exists():
            logger.warning("model cache entry %s is incomplete or altered: building it anew", entry)
            shutil.rmtree(entry)
        scratch = self.root / f"{SCRATCH_PREFIX}{entry.name}-{uuid.uuid4().hex[:8]}"
        try:
            build(scratch / "model")
            manifest = {
                "key": recipe.key,
                "recipe": recipe.material,
                "built": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": _files(scratch / "model"),
            }
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            scratch.rename(entry)  # whole or not at all: readers only ever see complete entries
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def remove_stale(self, keep: set[str], older_than_h: float, dry_run: bool) -> list[Path]:
        """Remove entries whose key is not in ``keep`` and that no run used for ``older_than_h``
        hours, and scratch directories of builds that died; an entry in use is skipped."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_h * 3600
        return [
            path
            for path in sorted(self.root.iterdir())
            if _removable(path, keep, cutoff) and self._remove(path, dry_run)
        ]

    def _remove(self, path: Path, dry_run: bool) -> bool:
        """Remove ``path`` unless a run holds its key's lock (building or copying it)."""
        name = path.name
        if name.startswith(SCRATCH_PREFIX):
            name = name.removeprefix(SCRATCH_PREFIX).rsplit("-", 1)[0]
        lock = self.lock(*name.rsplit("-", 1))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.info("skipping model cache entry %s: a run is using it", path)
            return False
        try:
            if not dry_run:
                shutil.rmtree(path)
        finally:
            lock.release()
        return True


def _removable(path: Path, keep: set[str], cutoff: float) -> bool:
    """A scratch directory (its build died if its lock is free), or an entry of another key
    unused since ``cutoff``."""
    if not path.is_dir() or path.name == "locks":
        return False
    if path.name.startswith(SCRATCH_PREFIX):
        return True
    used = path / LAST_USED
    last = (used if used.exists() else path).stat().st_mtime
    return path.name.rsplit("-", 1)[-1] not in keep and last < cutoff


@contextlib.contextmanager
def _held(lock: FileLock, what: str) -> Iterator[None]:
    """Hold ``lock``; while another process holds it, say what is waited for, how long and
    until when (a build there takes about 30 s)."""
    deadline = Deadline(LOCK_TIMEOUT_S)
    beat = Heartbeat(f"waiting for {what}, held by another run:", deadline, every_s=30.0)
    timeout = 0.0
    while True:
        try:
            lock.acquire(timeout=timeout)
            break
        except Timeout:
            if deadline.expired:
                raise HarnessError(
                    f"{what} was still locked by another process after {LOCK_TIMEOUT_S:.0f} s "
                    f"({lock.lock_file}); stop the run that holds it, or pass --model-cache "
                    "with another directory"
                ) from None
            beat.beat("building")
            timeout = min(5.0, deadline.remaining)
    try:
        yield
    finally:
        lock.release()


def describe(root: Path, name: str, key: str) -> list[str]:
    """``path=...`` and ``key=...`` lines, for ``$GITHUB_OUTPUT`` (actions/cache)."""
    return [f"path={root}", f"key={name}-{key}"]
