"""Finding what harness runs left in the workspace, by their ownership tags (the sweep).

Endpoints (with their server processes, alive or not), fine-tune jobs (MLflow runs), builds of
the tiny model that never got registered (their run keeps its ownership tags only until then)
and registered model versions; and the model cache's builds of recipes no current run uses
(``stale_model_builds``). Anything without the harness's run-id tag (a registered
foundation model, for instance) is never listed, so never deleted.
"""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import OwnedResource, ResourceKind
from harness.backends.local import endpoints, registry
from harness.backends.local.model_cache import ModelCache
from harness.backends.local.models import default_recipe_key
from harness.backends.local.processes import alive
from harness.backends.local.registry import TAG_KIND
from harness.backends.local.workspace import Workspace
from harness.lifecycle import DELETE_ORDER
from harness.naming import is_owned

PAGE = 1000


def owned(ws: Workspace) -> list[OwnedResource]:
    """In the teardown's order: a model before the job it came from, so that deleting the job
    also removes its run's directory, which the model's files kept. Where the MLflow store
    does not exist, nothing was ever run or registered: it is not opened (nor created)."""
    found = owned_endpoints(ws)
    if ws.has_store:
        found += [*owned_jobs(ws), *owned_models(ws)]
    return sorted(found, key=lambda r: DELETE_ORDER.index(ResourceKind(r.kind)))


def owned_endpoints(ws: Workspace) -> list[OwnedResource]:
    found = []
    for state in endpoints.all_states(ws):
        if is_owned(state.tags):
            record = state.process
            server = "none" if record is None else ("alive" if alive(record) else "dead")
            detail = f"port {state.port}, server {server}" + (
                f" ({record.describe()})" if record else ""
            )
            found.append(OwnedResource(ResourceKind.ENDPOINT, state.name, dict(state.tags), detail))
    return found


def owned_jobs(ws: Workspace) -> list[OwnedResource]:
    """Jobs and unfinished builds: MLflow runs, deleted the same way (``Jobs.delete``)."""
    client = ws.client()
    ids = [e.experiment_id for e in client.search_experiments(max_results=PAGE)]
    runs = [
        run
        for kind in ("job", "foundation")
        for run in (
            client.search_runs(ids, filter_string=f"tags.`{TAG_KIND}` = '{kind}'", max_results=PAGE)
            if ids
            else []
        )
    ]
    return [
        OwnedResource(
            ResourceKind.JOB, r.info.run_id, dict(r.data.tags), f"MLflow status {r.info.status}"
        )
        for r in runs
        if is_owned(r.data.tags)
    ]


def owned_models(ws: Workspace) -> list[OwnedResource]:
    return [
        OwnedResource(ResourceKind.MODEL, f"{v.name}:{v.version}", dict(v.tags), str(v.source))
        for v in registry.all_versions(ws)
        if is_owned(v.tags)
    ]


def stale_model_builds(cache_dir: Path, older_than_h: float, dry_run: bool) -> list[Path]:
    """Remove the cache's builds of other recipes unused for ``older_than_h`` hours (a run of an
    older checkout may still copy one) and the scratch of builds that died. Today's build is
    kept whatever its age: it is what the next run copies, and what CI's cache saves."""
    return ModelCache(cache_dir).remove_stale({default_recipe_key()}, older_than_h, dry_run)
