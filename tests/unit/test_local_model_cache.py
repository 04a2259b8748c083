"""The machine's cache of the built default model: built once per key, whole or absent, checked
before each use, shared safely by concurrent runs, and swept by the sweep's rules."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.backends.local import model_cache
from harness.backends.local.model_cache import ModelCache, Recipe
from harness.errors import ConfigError

NAME = "Phi-3-tiny-ultrachat"


def builder(
    calls: list[Path], weights: bytes = b"weights", pause_s: float = 0.0
) -> Callable[[Path], None]:
    """A stand-in for the model builder: writes a small MLflow-like directory."""

    def build(out: Path) -> None:
        calls.append(out)
        time.sleep(pause_s)
        (out / "model").mkdir(parents=True)
        (out / "MLmodel").write_text("flavors: {transformers: {model_binary: model}}\n")
        (out / "model" / "model.safetensors").write_bytes(weights)

    return build


def a_recipe(key_text: str = "one") -> Recipe:
    return Recipe({"sources": {"tiny_model.py": key_text}})


def test_a_second_run_copies_the_first_runs_build(tmp_path: Path) -> None:
    cache, calls = ModelCache(tmp_path / "cache"), list[Path]()
    assert not cache.provide(NAME, a_recipe(), tmp_path / "ws1", builder(calls))
    assert cache.provide(NAME, a_recipe(), tmp_path / "ws2", builder(calls))
    assert len(calls) == 1
    for ws in ("ws1", "ws2"):
        assert (tmp_path / ws / "model" / "model.safetensors").read_bytes() == b"weights"
    entry = cache.entry(NAME, a_recipe().key)
    assert entry.name == f"{NAME}-{a_recipe().key}" and cache.intact(entry)


def test_another_recipe_builds_another_entry(tmp_path: Path) -> None:
    cache, calls = ModelCache(tmp_path), list[Path]()
    cache.provide(NAME, a_recipe("one"), tmp_path / "ws1", builder(calls))
    cache.provide(NAME, a_recipe("two"), tmp_path / "ws2", builder(calls))
    assert len(calls) == 2
    assert a_recipe("one").key != a_recipe("two").key


def test_an_altered_entry_is_built_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache, calls = ModelCache(tmp_path / "cache"), list[Path]()
    cache.provide(NAME, a_recipe(), tmp_path / "ws1", builder(calls))
    entry = cache.entry(NAME, a_recipe().key)
    (entry / "model" / "model" / "model.safetensors").write_bytes(b"truncat")
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert not cache.provide(NAME, a_recipe(), tmp_path / "ws2", builder(calls))
    assert len(calls) == 2 and "incomplete or altered" in caplog.text
    assert (tmp_path / "ws2" / "model" / "model.safetensors").read_bytes() == b"weights"


def test_an_entry_without_its_manifest_is_not_trusted(tmp_path: Path) -> None:
    cache, calls = ModelCache(tmp_path / "cache"), list[Path]()
    cache.provide(NAME, a_recipe(), tmp_path / "ws1", builder(calls))
    (cache.entry(NAME, a_recipe().key) / model_cache.MANIFEST).unlink()
    cache.provide(NAME, a_recipe(), tmp_path / "ws2", builder(calls))
    assert len(calls) == 2


def test_a_failed_build_leaves_no_entry_and_no_scratch(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")

    def failing(out: Path) -> None:
        (out / "model").mkdir(parents=True)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.provide(NAME, a_recipe(), tmp_path / "ws", failing)
    assert sorted(p.name for p in cache.root.iterdir()) == ["locks"]
    assert not (tmp_path / "ws").exists()


def test_concurrent_runs_build_once(tmp_path: Path) -> None:
    cache, calls = ModelCache(tmp_path / "cache"), list[Path]()
    build = builder(calls, pause_s=0.3)
    runs = [
        threading.Thread(target=cache.provide, args=(NAME, a_recipe(), tmp_path / f"ws{i}", build))
        for i in range(3)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(calls) == 1
    assert all((tmp_path / f"ws{i}" / "model" / "model.safetensors").is_file() for i in range(3))


def test_a_wait_for_another_runs_build_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ModelCache(tmp_path / "cache")
    held = threading.Event()

    def other_run() -> None:  # takes and releases its lock in its own thread, as filelock wants
        with cache.lock(NAME, a_recipe().key):
            held.set()
            time.sleep(0.3)

    threading.Thread(target=other_run).start()
    held.wait()
    with caplog.at_level(logging.INFO, logger="harness"):
        cache.provide(NAME, a_recipe(), tmp_path / "ws", builder([]))
    assert "waiting for the model cache's build of Phi-3-tiny-ultrachat" in caplog.text
    assert "of 15m deadline" in caplog.text


def test_an_unwritable_cache_is_refused_naming_the_option(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="--model-cache"):
        ModelCache(afile).provide(NAME, a_recipe(), tmp_path / "ws", builder([]))


def test_the_key_follows_sources_data_and_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, data = tmp_path / "tiny_model.py", tmp_path / "dataset" / "data"
    data.mkdir(parents=True)
    source.write_text("STEPS = 150\n")
    (data / "train_gen.parquet").write_bytes(b"rows")
    monkeypatch.setattr(model_cache, "RECIPE_SOURCES", (source,))
    versions = {"torch": "2.13.0"}
    monkeypatch.setattr(model_cache, "RECIPE_DISTRIBUTIONS", tuple(versions))
    monkeypatch.setattr("importlib.metadata.version", lambda name: versions[name])

    def key() -> str:
        model_cache.recipe.cache_clear()
        return model_cache.recipe(tmp_path / "dataset").key

    keys = [key()]
    source.write_text("STEPS = 100\n")
    keys.append(key())
    (data / "train_gen.parquet").write_bytes(b"ROWS")  # same size, other bytes
    keys.append(key())
    versions["torch"] = "2.14.0"
    keys.append(key())
    assert len(set(keys)) == 4
    assert key() == keys[-1]


def test_the_default_recipe_hashes_the_builder_and_the_shipped_data() -> None:
    from harness.data import SHIPPED_DATASET

    material = model_cache.recipe(Path(SHIPPED_DATASET)).material
    sources, data, libraries = (material[k] for k in ("sources", "data", "libraries"))
    assert isinstance(sources, dict) and isinstance(data, dict) and isinstance(libraries, dict)
    assert {"tiny_model.py", "chat_data.py", "mlflow_model.py"} <= set(sources)
    assert "train_gen-00000-of-00001.parquet" in data
    assert {"torch", "transformers", "trl"} <= set(libraries)


def aged(path: Path, hours: float) -> None:
    moment = time.time() - hours * 3600
    os.utime(path, (moment, moment))


def test_the_sweep_removes_old_builds_of_other_recipes_only(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    for text in ("today", "old", "recent"):
        cache.provide(NAME, a_recipe(text), tmp_path / f"ws-{text}", builder([]))
    for text in ("today", "old"):
        aged(cache.entry(NAME, a_recipe(text).key) / model_cache.LAST_USED, 48)
    keep = {a_recipe("today").key}
    old = cache.entry(NAME, a_recipe("old").key)
    assert cache.remove_stale(keep, 6, dry_run=True) == [old] and old.is_dir()
    assert cache.remove_stale(keep, 6, dry_run=False) == [old]
    left = {p.name for p in tmp_path.iterdir() if p.name.startswith(NAME)}
    assert left == {f"{NAME}-{a_recipe(t).key}" for t in ("today", "recent")}


def test_the_sweep_skips_a_build_in_use_and_removes_a_dead_builds_scratch(
    tmp_path: Path,
) -> None:
    cache = ModelCache(tmp_path)
    cache.provide(NAME, a_recipe("old"), tmp_path / "ws", builder([]))
    old = cache.entry(NAME, a_recipe("old").key)
    aged(old / model_cache.LAST_USED, 48)
    live = tmp_path / f"{model_cache.SCRATCH_PREFIX}{NAME}-{a_recipe('live').key}-1a2b3c4d"
    dead = tmp_path / f"{model_cache.SCRATCH_PREFIX}{NAME}-{a_recipe('dead').key}-5e6f7a8b"
    live.mkdir()
    dead.mkdir()
    held = [cache.lock(NAME, a_recipe(t).key) for t in ("old", "live")]
    for lock in held:
        lock.acquire()
    try:
        assert cache.remove_stale(set(), 6, dry_run=False) == [dead]
    finally:
        for lock in held:
            lock.release()
    assert old.is_dir() and live.is_dir() and not dead.exists()
    assert cache.remove_stale(set(), 6, dry_run=False) == [live, old]
