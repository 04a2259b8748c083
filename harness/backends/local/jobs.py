"""Fine-tune jobs as child processes: submit, status, cancel, wait, metrics.

A job is an MLflow run (the job name is the run id, as an Azure job name is its root run id)
plus a directory with its spec, logs and status file. Status uses Azure's job states; a process
that dies without reporting is ``Failed`` with its log tail, never left ``Running``. A job of
several processes is a ``torchrun`` launcher and its ranks: stopping the job stops the
launcher's group and every rank's own group, and a failed job shows the failed rank's log.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends.base import JOB_FINAL, Compute, JobRun, TrainingMetrics
from harness.backends.local import compute, registry
from harness.backends.local.job_files import (
    LOG_FILE,
    MLFLOW_END,
    PROCESS_FILE,
    SPEC_FILE,
    JobSpec,
    rank_log,
    rank_processes,
    read_status,
    tmp_dir,
    write_status,
)
from harness.backends.local.metrics import MetricsWatch, read_metrics
from harness.backends.local.mlflow_model import local_path
from harness.backends.local.processes import (
    STOP_GRACE_S,
    Child,
    ProcessRecord,
    alive,
    child_env,
    exit_description,
    log_tail,
    python,
    scratch_env,
    spawn,
    stop,
)
from harness.backends.local.registry import TAG_KIND
from harness.backends.local.training.parameters import resolve
from harness.backends.local.workspace import Workspace
from harness.errors import JobError
from harness.files import read_state, write_json
from harness.naming import TAG_RUN_ID
from harness.waiting import Deadline, Heartbeat

if TYPE_CHECKING:
    from harness.data import PreparedData
    from harness.model_card import ModelCard

POLL_S = 0.5
SETTLE_S = 10.0  # a failed job's launcher gets this long to stop its ranks and say why
ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+)", re.S)  # torchrun's failure summary


@dataclass(frozen=True)
class JobInputs:
    """What a local fine-tune job is given; the job's run and directories are added at submit."""

    model_dir: str
    train_file: str
    test_file: str
    device: str
    processes: int
    parameters: dict[str, Any]


def job_inputs(
    ws: Workspace,
    card: ModelCard,
    compute_: Compute,
    data: PreparedData,
    parameters: Mapping[str, Any],
) -> JobInputs:
    """The job's inputs, every one checked before a process starts (a bad parameter value, a
    missing data file, a model version that is not registered)."""
    resolve(parameters)
    train, test = data.training_files()
    version = registry.require_version(ws, card.name, card.version)
    return JobInputs(
        model_dir=str(registry.version_dir(version)),
        train_file=train,
        test_file=test,
        device=compute.training_device(compute_),
        processes=compute_.gpus_per_node,
        parameters=dict(parameters),
    )


def failed_rank(job_dir: Path) -> int:
    """The rank that failed first: torchrun's root cause when it printed one (it also knows of
    ranks killed by a signal), else the rank that reported the failure, else 0."""
    found = ROOT_CAUSE.search(log_tail(job_dir / LOG_FILE, 60))
    if found:
        return int(found.group(1))
    return int(read_status(job_dir).get("failed_rank") or 0)


def _died(code: int | None) -> str:
    return f"the job process exited ({exit_description(code)}) without reporting a result"


def _in_use(ws: Workspace, run_dir: Path) -> bool:
    """Whether a registered model's files lie in the run's directory."""
    from harness.backends.local import registry

    return any(local_path(str(v.source)).is_relative_to(run_dir) for v in registry.all_versions(ws))


class Jobs:
    """The jobs of one workspace; remembers the processes this instance started."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.procs: dict[str, Child] = {}

    def submit(
        self, inputs: JobInputs, display_name: str, experiment: str, tags: Mapping[str, str]
    ) -> JobRun:
        """Start a job with ``inputs`` (see ``job_inputs``), filed as a run of ``experiment``."""
        client = self.ws.client()
        run = client.create_run(
            self.ws.experiment_id(experiment), run_name=display_name, tags={**tags, TAG_KIND: "job"}
        )
        name = run.info.run_id
        client.set_tag(name, "mlflow.rootRunId", name)
        output = local_path(run.info.artifact_uri) / "model"
        spec = JobSpec(
            job_name=name,
            tracking_uri=self.ws.tracking_uri,
            run_id=name,
            output_dir=str(output),
            job_dir=str(self.ws.jobs / name),
            **asdict(inputs),
        )
        return self.start(
            spec, {"tags": dict(tags), "display_name": display_name, "experiment": experiment}
        )

    def start(
        self, spec: JobSpec, info: Mapping[str, Any], argv: list[str] | None = None
    ) -> JobRun:
        """Write the job's directory and start its process (``argv``: the training entry)."""
        job_dir = Path(spec.job_dir)
        job_dir.mkdir(parents=True)
        spec.write()
        write_status(job_dir, "NotStarted", **info)
        command = argv or spec.argv(python())
        env = child_env({**spec.env(), **scratch_env(tmp_dir(job_dir), self.ws.caches)})
        proc = spawn(command, job_dir / LOG_FILE, env, cwd=job_dir)
        self.procs[spec.job_name] = proc
        write_json(job_dir / PROCESS_FILE, proc.record.to_dict())
        return self.get(spec.job_name)

    def get(self, name: str) -> JobRun:
        state = self._state(name)
        return JobRun(
            name=name,
            display_name=state.get("display_name", name),
            status=state["status"],
            url=str(self.ws.jobs / name / LOG_FILE),
            experiment=state.get("experiment", ""),
            error=state.get("error", ""),
        )

    def _state(self, name: str) -> dict[str, Any]:
        """The status file, after turning a silently dead process into ``Failed``."""
        job_dir = self.ws.jobs / name
        state = read_status(job_dir)
        if not state:
            raise JobError(
                f"job {name} is unknown in {self.ws.jobs}; expected {job_dir / SPEC_FILE}; "
                "submit the job again"
            )
        state = {**state, **read_state(job_dir / PROCESS_FILE)}
        if state["status"] in JOB_FINAL or not self._exited(name, state):
            return state
        if read_status(job_dir)["status"] not in JOB_FINAL:  # it may have just finished
            code = self.procs[name].returncode if name in self.procs else None
            self._finish(name, "Failed", _died(code), died=True)
        return {**read_status(job_dir), **read_state(job_dir / PROCESS_FILE)}

    def died(self, run_id: str) -> list[str]:
        """The jobs of run ``run_id`` whose process ended without reporting a result (SIGKILL,
        the OOM killer, a crash), each named with how it ended and its log. Read-only, for a
        process that watches the run (the xdist controller): the job's own waiter marks it."""
        found = []
        for job_dir in sorted(self.ws.jobs.glob("*")) if self.ws.jobs.is_dir() else []:
            state = read_status(job_dir)
            if state.get("tags", {}).get(TAG_RUN_ID) == run_id:
                error = state.get("error") if state.get("died") else self._silent_death(job_dir)
                if error:
                    what = f"fine-tune job {job_dir.name} ({state.get('display_name', '')})"
                    found.append(f"{what} died: {error}; log {job_dir / LOG_FILE}")
        return found

    def _silent_death(self, job_dir: Path) -> str | None:
        """Why a job that no one has marked yet is dead, or None: not started yet (no process
        recorded), finished, being stopped by the harness, or still running."""
        state = read_status(job_dir)
        if state.get("status") in {*JOB_FINAL, "CancelRequested"}:
            return None
        record = ProcessRecord.from_dict(read_state(job_dir / PROCESS_FILE))
        if record is None or alive(record):
            return None
        if read_status(job_dir).get("status") in JOB_FINAL:  # it may have just finished
            return None
        proc = self.procs.get(job_dir.name)
        return _died(proc.returncode if proc is not None else None)

    def _exited(self, name: str, state: Mapping[str, Any]) -> bool:
        proc = self.procs.get(name)
        if proc is not None:
            return proc.poll() is not None
        return not alive(ProcessRecord.from_dict(state))

    def _finish(self, name: str, status: str, error: str = "", died: bool = False) -> None:
        """``died``: its process ended without reporting (see ``died``)."""
        extra = {"died": True} if died else {}
        write_status(self.ws.jobs / name, status, error=error, ended=time.time(), **extra)
        self.end_run(name, status)

    def end_run(self, name: str, status: str) -> None:
        """Close the job's MLflow run with the matching run status."""
        self.ws.client().set_terminated(name, MLFLOW_END[status])

    def cancel(self, name: str, grace_s: float = STOP_GRACE_S) -> None:
        """Stop a running job (its whole process group); a finished job is left as it is."""
        state = self._state(name)
        if state["status"] in JOB_FINAL:
            return
        write_status(self.ws.jobs / name, "CancelRequested")
        self._stop(name, ProcessRecord.from_dict(state), grace_s)
        if name in self.procs:
            self.procs[name].wait()
        if read_status(self.ws.jobs / name)["status"] not in JOB_FINAL:
            self._finish(name, "Canceled", "canceled by the harness")

    def _stop(self, name: str, launcher: ProcessRecord | None, grace_s: float) -> None:
        """Stop the launcher's group (torchrun stops its ranks on SIGTERM), then any rank
        still running: a SIGKILLed launcher leaves its ranks behind."""
        stop(launcher, grace_s, f"job {name}")
        for rank in rank_processes(self.ws.jobs / name):
            stop(ProcessRecord.from_dict(rank), grace_s, f"job {name} rank {rank.get('rank')}")

    def wait(self, job: JobRun, timeout_s: float) -> JobRun:
        """Wait until the job ends; Completed is returned, anything else raises JobError."""
        current, deadline = job, Deadline(timeout_s)
        heartbeat = Heartbeat(f"job {job.name} ({job.display_name})", deadline, job.url)
        losses = MetricsWatch(self.ws.client, job.name)

        def ended() -> bool:
            nonlocal current
            current = self.get(job.name)
            heartbeat.beat(current.status)
            losses.say()
            return current.status in JOB_FINAL

        deadline.until(ended, POLL_S)
        if current.status not in JOB_FINAL:
            self.cancel(job.name)
            raise self._error(
                self.get(job.name),
                f"did not finish within {timeout_s:.0f} s, so it was "
                "canceled; raise the job timeout (--job-timeout) or train fewer steps",
            )
        if current.status != "Completed":
            self._settle(job.name)
            raise self._error(current, f"ended with status {current.status}, expected Completed")
        return current

    def _settle(self, name: str) -> None:
        """Give a failed job's launcher a moment to stop its other ranks and log why."""
        launcher = ProcessRecord.from_dict(read_state(self.ws.jobs / name / PROCESS_FILE))
        Deadline(SETTLE_S).until(lambda: not alive(launcher), POLL_S / 5)

    def _error(self, job: JobRun, what: str) -> JobError:
        job_dir = self.ws.jobs / job.name
        rank = failed_rank(job_dir)
        reason = f" ({job.error})" if job.error else ""
        logs = [rank_log(job_dir, rank)] + ([Path(job.url)] if rank else [])
        tails = "\n".join(f"log {log}:\n{log_tail(log, 40 if rank == 0 else 20)}" for log in logs)
        return JobError(
            f"fine-tune job {job.name} ({job.display_name}) {what}{reason}; {tails}\n"
            "fix the cause shown in the log and run again"
        )

    def metrics(self, job: JobRun) -> TrainingMetrics:
        return read_metrics(self.ws.client(), job.name)

    def spec(self, name: str) -> JobSpec:
        return JobSpec.read(self.ws.jobs / name / SPEC_FILE)

    def forget(self, name: str, grace_s: float = STOP_GRACE_S) -> None:
        """Stop tracking a job whose files are gone (reaping its process if it was ours)."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            self._stop(name, proc.record, grace_s)
            proc.wait()

    def delete(self, name: str, grace_s: float) -> None:
        """Cancel the job if it runs, then delete its run, directory (its temp dir inside)
        and the artifacts no registered model uses (a real model's merged weights are
        gigabytes). Every process of the job is stopped first, finished or not: the ranks of
        a job whose launcher was killed still run, and would write into a removed directory."""
        self.remove_directory(name, grace_s)
        client = self.ws.client()
        run_dir = local_path(client.get_run(name).info.artifact_uri).parent
        if not _in_use(self.ws, run_dir) and run_dir.is_relative_to(self.ws.root):
            shutil.rmtree(run_dir, ignore_errors=True)
        client.delete_run(name)

    def remove_directory(self, name: str, grace_s: float) -> None:
        """Stop every process of the job, finished or not, then remove its directory."""
        job_dir = self.ws.jobs / name
        if job_dir.is_dir():
            self.cancel(name, grace_s)
            self._stop(name, ProcessRecord.from_dict(read_state(job_dir / PROCESS_FILE)), grace_s)
            shutil.rmtree(job_dir)
        self.forget(name, grace_s)

    def close(self) -> None:
        """Cancel every job this instance started that still runs."""
        for name in list(self.procs):
            if (self.ws.jobs / name).is_dir():
                self.cancel(name)
            self.forget(name)
