"""Finding and deleting what harness runs left in the workspace, by their ownership tags.

Endpoints (with their server processes, alive or not), fine-tune jobs (MLflow runs) and
registered model versions. Anything without the harness's run-id tag (foundation models, for
instance) is never listed, so never deleted.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from harness.backends.base import OwnedResource
from harness.backends.local import deployment, endpoints, registry
from harness.backends.local.defaults import TAG_KIND
from harness.backends.local.mlflow_model import local_path
from harness.backends.local.process import group_alive
from harness.backends.local.workspace import Workspace
from harness.errors import CleanupError
from harness.naming import is_owned

if TYPE_CHECKING:
    from harness.backends.local.job import Jobs

PAGE = 1000


def owned(ws: Workspace) -> list[OwnedResource]:
    return [*owned_endpoints(ws), *owned_jobs(ws), *owned_models(ws)]


def owned_endpoints(ws: Workspace) -> list[OwnedResource]:
    found = []
    for state in endpoints.all_states(ws):
        if is_owned(state.tags):
            server = "none" if not state.pgid else ("alive" if group_alive(state.pgid) else "dead")
            detail = f"port {state.port}, server {server} (pgid {state.pgid})"
            found.append(OwnedResource("endpoint", state.name, dict(state.tags), detail))
    return found


def owned_jobs(ws: Workspace) -> list[OwnedResource]:
    client = ws.client()
    ids = [e.experiment_id for e in client.search_experiments(max_results=PAGE)]
    runs = (
        client.search_runs(ids, filter_string=f"tags.`{TAG_KIND}` = 'job'", max_results=PAGE)
        if ids
        else []
    )
    return [
        OwnedResource("job", r.info.run_id, dict(r.data.tags), f"MLflow status {r.info.status}")
        for r in runs
        if is_owned(r.data.tags)
    ]


def owned_models(ws: Workspace) -> list[OwnedResource]:
    return [
        OwnedResource("model", f"{v.name}:{v.version}", dict(v.tags), str(v.source))
        for v in registry.all_versions(ws)
        if is_owned(v.tags)
    ]


def delete(ws: Workspace, jobs: Jobs, resource: OwnedResource) -> None:
    """Delete one owned resource; CleanupError for a kind the local backend never creates."""
    if resource.kind == "endpoint":
        deployment.delete(ws, resource.name)
    elif resource.kind == "job":
        delete_job(ws, jobs, resource.name)
    elif resource.kind == "model":
        name, _, version = resource.name.rpartition(":")
        registry.delete_version(ws, name, version)
    else:
        raise CleanupError(
            f"resource kind {resource.kind!r} ({resource.name}) is not created by the "
            "local backend; expected endpoint, job or model; delete it by hand"
        )


def delete_job(ws: Workspace, jobs: Jobs, name: str) -> None:
    """Cancel the job if it runs, then delete its run, directory and unregistered artifacts."""
    if (ws.jobs / name).is_dir():
        jobs.cancel(name)
        shutil.rmtree(ws.jobs / name)
    jobs.forget(name)
    client = ws.client()
    artifacts = local_path(client.get_run(name).info.artifact_uri)
    sources = {local_path(str(v.source)) for v in registry.all_versions(ws)}
    if artifacts.is_dir() and not any(s.is_relative_to(artifacts) for s in sources):
        shutil.rmtree(artifacts.parent)
    client.delete_run(name)
