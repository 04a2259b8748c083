"""The local model registry: MLflow registered models and versions in the workspace's SQLite.

Tags keep the registry's string format (lists as Python reprs, dicts as JSON), so
``harness.model_card.model_card`` parses a local model exactly as it parses an Azure one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends.local.mlflow_model import local_path
from harness.backends.local.workspace import Workspace
from harness.errors import ConfigError
from harness.model_card import ModelCard, model_card

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

PAGE = 500
TAG_JOB_NAME = "harness-job-name"  # on a fine-tuned version: the job it came from
TAG_KIND = "harness-kind"  # foundation or job: what an MLflow run or version is
TAG_RECIPE = "harness-recipe"  # on the tiny model: the build recipe's hash


def model_id(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def card_of(version: ModelVersion) -> ModelCard:
    """The typed card of a registered version (raises TagError on malformed tags)."""
    return model_card(
        version.name,
        str(version.version),
        model_id(version.name, version.version),
        dict(version.tags),
    )


def name_filter(name: str) -> str:
    """An MLflow filter string matching ``name`` exactly.

    MLflow's filter grammar has no escape character (a backslash is literal): a name is quoted
    with the quote it does not hold, and one holding both cannot be searched for.
    """
    for quote in ("'", '"'):
        if quote not in name:
            return f"name = {quote}{name}{quote}"
    raise ConfigError(
        f"model name {name!r} holds both quote characters, which no MLflow registry filter can "
        "express; use a name of letters, digits, '-', '_' and '.'"
    )


def versions_of(ws: Workspace, name: str) -> list[ModelVersion]:
    where = name_filter(name)
    return _all(
        ws,
        lambda token: ws.client().search_model_versions(where, max_results=PAGE, page_token=token),
    )


def all_versions(ws: Workspace) -> list[ModelVersion]:
    return _all(
        ws, lambda token: ws.client().search_model_versions(max_results=PAGE, page_token=token)
    )


def _all(ws: Workspace, search: Callable[[str | None], Any]) -> list[Any]:
    """Every item of a paged MLflow search. A workspace without its store has registered
    nothing: the store is not created (a second of MLflow's migrations) only to say so."""
    if not ws.has_store:
        return []
    items: list[Any] = []
    token: str | None = None
    while True:
        page = search(token)
        items.extend(page)
        token = page.token
        if not token:
            return items


def find_version(ws: Workspace, name: str, version_or_label: str) -> ModelVersion | None:
    """A version by number, ``latest`` or an MLflow alias; None when there is none."""
    versions = versions_of(ws, name)
    if version_or_label == "latest":
        return max(versions, key=lambda v: int(v.version), default=None)
    for version in versions:
        if str(version.version) == version_or_label or version_or_label in (version.aliases or []):
            return version
    return None


def require_version(ws: Workspace, name: str, version_or_label: str) -> ModelVersion:
    found = find_version(ws, name, version_or_label)
    if found is not None:
        return found
    known = sorted(str(v.version) for v in versions_of(ws, name))
    raise ConfigError(
        f"model {name}:{version_or_label} is not in the local registry at {ws.tracking_uri}; "
        f"versions found: {', '.join(known) or 'none'}; register it with "
        f"`python -m harness register-model DIR --name {name} "
        f"--workspace {ws.root}` or pass --model-version with an existing version"
    )


def register(
    ws: Workspace, name: str, source: str, run_id: str, tags: Mapping[str, str]
) -> ModelVersion:
    """A new version of ``name`` (created if needed) with lineage to ``run_id``."""
    client = ws.client()
    with ws.lock(f"register-{name}"):
        created = not client.search_registered_models(name_filter(name), max_results=1)
        if created:
            client.create_registered_model(name)
        try:
            return client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags))
        except BaseException:
            if created:  # a model without versions would look registered to the next run
                client.delete_registered_model(name)
            raise


def version_dir(version: ModelVersion) -> Path:
    """The MLflow model directory of a version (its source)."""
    return local_path(str(version.source))


def delete_version(ws: Workspace, name: str, version: str) -> bool:
    """Delete a version and its files; the registered model goes with its last version."""
    found = find_version(ws, name, version)
    if found is None:
        return False
    path = version_dir(found)
    ws.client().delete_model_version(name, str(found.version))
    shared = any(version_dir(v) == path for v in all_versions(ws))
    if path.is_dir() and path.is_relative_to(ws.root) and not shared:
        shutil.rmtree(path)
        _remove_orphaned_run_dir(ws, found, path)
    if not versions_of(ws, name):
        ws.client().delete_registered_model(name)
    return True


def _remove_orphaned_run_dir(ws: Workspace, version: ModelVersion, path: Path) -> None:
    """The MLflow run directory (``<experiment>/<run id>``) that held a deleted version's
    files, once its run is gone too (its job was deleted first, which kept the directory for
    the model): nothing else would ever remove it."""
    from mlflow.exceptions import MlflowException

    run_dir = path.parent.parent
    if run_dir.name != version.run_id or not run_dir.is_relative_to(ws.root):
        return
    try:
        gone = ws.client().get_run(version.run_id).info.lifecycle_stage == "deleted"
    except MlflowException:  # no such run
        gone = True
    if gone:
        shutil.rmtree(run_dir, ignore_errors=True)
