"""The local job machinery with stand-in processes: status, failure, cancellation, deadline."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.backends.local import jobs as job_module
from harness.backends.local import processes
from harness.backends.local.job_files import (
    JobSpec,
    rank_log,
    rank_processes,
    read_status,
    write_status,
)
from harness.backends.local.jobs import Jobs
from harness.backends.local.processes import (
    ProcessRecord,
    group_members,
    pid_alive,
    spawn,
    stop,
)
from harness.backends.local.workspace import Workspace
from harness.errors import JobError
from harness.naming import ownership_tags


class RecordingJobs(Jobs):
    """Jobs without MLflow: run endings are recorded instead of written to the store."""

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        self.ended: list[tuple[str, str]] = []

    def end_run(self, name: str, status: str) -> None:
        self.ended.append((name, status))


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingJobs]:
    monkeypatch.setattr(job_module, "POLL_S", 0.02)
    recording = RecordingJobs(Workspace.at(tmp_path))
    yield recording
    recording.close()


def spec(ws: Workspace, name: str = "job1", processes: int = 1) -> JobSpec:
    return JobSpec(
        job_name=name,
        tracking_uri="sqlite:///unused.db",
        run_id=name,
        model_dir="m",
        train_file="train.jsonl",
        test_file="test.jsonl",
        output_dir="out",
        job_dir=str(ws.jobs / name),
        parameters={"max_steps": 3},
        processes=processes,
    )


def start(jobs: Jobs, script: str, name: str = "job1") -> Any:
    return jobs.start(spec(jobs.ws, name), {"display_name": "tiny-job"}, argv=["sh", "-c", script])


def start_python(jobs: Jobs, code: str, name: str = "job1") -> Any:
    argv = [sys.executable, "-c", code]
    return jobs.start(spec(jobs.ws, name), {"display_name": "tiny-job"}, argv=argv)


# A stand-in for torchrun: each rank in a session of its own (as torchrun starts them) and
# recorded as the ranks record themselves, the launcher deaf to SIGTERM, so only the records
# let the harness stop the ranks.
LAUNCHER = """
import json, os, pathlib, signal, subprocess, time
import psutil
from harness.backends.local.processes import TOKEN_ENV
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for r in (0, 1):
    pid = subprocess.Popen(["sleep", "30"], start_new_session=True).pid
    record = {"rank": r, "pid": pid, "pgid": pid, "started": psutil.Process(pid).create_time(),
              "cmdline": ["sleep", "30"], "token": os.environ[TOKEN_ENV]}
    pathlib.Path("rank.part").write_text(json.dumps(record))
    os.replace("rank.part", f"rank{r}.json")
time.sleep(30)
"""


def start_launcher(jobs: Jobs) -> tuple[Any, Path, list[dict[str, Any]]]:
    """The stand-in launcher, once both its ranks have recorded themselves."""
    job = start_python(jobs, LAUNCHER)
    job_dir = jobs.ws.jobs / job.name
    deadline = time.monotonic() + 10
    while len(rank_processes(job_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return job, job_dir, rank_processes(job_dir)


def test_spec_round_trips_and_starts_the_training_entry(tmp_path: Path) -> None:
    job_spec = spec(Workspace.at(tmp_path))
    Path(job_spec.job_dir).mkdir(parents=True)
    path = job_spec.write()
    assert JobSpec.read(path) == job_spec
    entry = ["-m", "harness.backends.local.training", "--spec", str(path)]
    assert job_spec.argv("/py") == ["/py", *entry]
    assert job_spec.env() == {}


def test_several_processes_start_through_torchrun_sharing_the_cores(tmp_path: Path) -> None:
    job_spec = spec(Workspace.at(tmp_path), processes=2)
    argv = job_spec.argv("/py")
    assert argv[:3] == ["/py", "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in argv and "--standalone" in argv and "--max-restarts=0" in argv
    assert argv[-4:] == [
        "-m",
        "harness.backends.local.training",
        "--spec",
        str(Path(job_spec.job_dir) / "spec.json"),
    ]
    assert job_spec.env(cpus=8) == {"OMP_NUM_THREADS": "4"}
    assert job_spec.env(cpus=1) == {"OMP_NUM_THREADS": "1"}


def test_cancel_stops_every_rank_even_when_the_launcher_ignores_sigterm(
    jobs: RecordingJobs,
) -> None:
    job, _, ranks = start_launcher(jobs)
    assert [r["rank"] for r in ranks] == [0, 1] and all(pid_alive(r["pid"]) for r in ranks)
    jobs.cancel(job.name, grace_s=0.1)
    assert jobs.get(job.name).status == "Canceled"
    assert not any(pid_alive(r["pid"]) for r in ranks)


def test_a_failed_rank_fails_the_job_with_its_own_log_tail(jobs: RecordingJobs) -> None:
    code = (
        "import pathlib; from harness.backends.local.job_files import write_status; "
        "pathlib.Path('rank1.log').write_text('Traceback\\nValueError: boom on rank 1\\n'); "
        "write_status(pathlib.Path('.'), 'Failed', error='rank 1: ValueError: boom', "
        "failed_rank=1); print('torchrun: rank 1 failed'); raise SystemExit(1)"
    )
    job = start_python(jobs, code)
    with pytest.raises(JobError, match="boom on rank 1") as raised:
        jobs.wait(job, 10)
    message = str(raised.value)
    assert "rank 1: ValueError: boom" in message and "torchrun: rank 1 failed" in message
    assert str(rank_log(jobs.ws.jobs / job.name, 1)) in message


def test_the_first_failing_rank_names_the_cause(tmp_path: Path) -> None:
    from harness.backends.local.training.__main__ import report_failure

    write_status(tmp_path, "Running")
    assert report_failure(tmp_path, 1, ValueError("bad row"), ranked=True)
    assert not report_failure(tmp_path, 0, RuntimeError("peer closed"), ranked=True)
    state = read_status(tmp_path)
    assert (state["status"], state["error"], state["failed_rank"]) == (
        "Failed",
        "rank 1: ValueError: bad row",
        1,
    )


def test_a_running_job_is_canceled_with_its_whole_process_group(jobs: RecordingJobs) -> None:
    job = start(jobs, "sleep 30 & sleep 30")
    assert job.status == "NotStarted" and job.display_name == "tiny-job"
    pgid = jobs.procs[job.name].pid
    jobs.cancel(job.name)
    assert jobs.get(job.name).status == "Canceled"
    assert not group_members(pgid)
    assert jobs.ended == [(job.name, "Canceled")]
    jobs.cancel(job.name)  # a finished job: nothing happens
    assert jobs.ended == [(job.name, "Canceled")]


def test_a_process_that_dies_silently_is_failed_with_its_log_tail(jobs: RecordingJobs) -> None:
    job = start(jobs, "echo boom-from-the-job; exit 7")
    with pytest.raises(JobError, match="boom-from-the-job") as raised:
        jobs.wait(job, 10)
    assert "code 7" in str(raised.value) and "expected Completed" in str(raised.value)
    assert jobs.get(job.name).status == "Failed"
    assert jobs.ended == [(job.name, "Failed")]


def test_the_deadline_cancels_the_job_and_says_so(jobs: RecordingJobs) -> None:
    job = start(jobs, "sleep 30")
    with pytest.raises(JobError, match="did not finish within"):
        jobs.wait(job, 0.2)
    assert jobs.get(job.name).status == "Canceled"


def test_the_status_the_job_reports_is_the_job_status(jobs: RecordingJobs) -> None:
    done = start(jobs, "sleep 0.1", name="done")
    write_status(jobs.ws.jobs / "done", "Completed")
    assert jobs.wait(done, 10).status == "Completed"
    failed = start(jobs, "sleep 0.1", name="failed")
    write_status(jobs.ws.jobs / "failed", "Failed", error="ValueError: bad rows")
    with pytest.raises(JobError, match="ValueError: bad rows"):
        jobs.wait(failed, 10)


def test_an_unknown_job_is_a_clear_error(jobs: RecordingJobs) -> None:
    with pytest.raises(JobError, match="unknown"):
        jobs.get("nope")


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    proc = spawn(["sh", "-c", "trap '' TERM; echo ready; sleep 30"], tmp_path / "log", {}, tmp_path)
    deadline = time.monotonic() + 5
    while b"ready" not in (tmp_path / "log").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stop(proc.record, grace_s=0.2)
    proc.wait()
    assert not group_members(proc.pid)
    assert not stop(proc.record)


def test_python_children_are_started_with_this_interpreter() -> None:
    from harness.backends.local.processes import child_env, python

    env = child_env({"EXTRA": "1"})
    assert python() == sys.executable
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_DATASETS_OFFLINE"] == "1"
    assert env["EXTRA"] == "1" and str(Path(job_module.__file__).parents[3]) in env["PYTHONPATH"]


def test_missing_training_files_are_refused_before_a_job_starts(tmp_path: Path) -> None:
    from harness.data import PreparedData
    from harness.errors import DataError

    train = tmp_path / "train_sft.jsonl"
    train.write_text("{}\n")
    data = PreparedData(directory=str(tmp_path), files={"train_sft": str(train)}, counts={})
    with pytest.raises(DataError, match=r"test_sft \(not prepared\)"):
        data.training_files()
    test = tmp_path / "test_sft.jsonl"
    test.write_text("{}\n")
    complete = PreparedData(str(tmp_path), {"train_sft": str(train), "test_sft": str(test)}, {})
    assert complete.training_files() == (str(train), str(test))


def test_torchruns_root_cause_names_the_failed_rank_even_when_it_was_killed(tmp_path: Path) -> None:
    from harness.backends.local.jobs import failed_rank

    write_status(tmp_path, "Failed", failed_rank=0)  # rank 0 reported its peer's loss first
    assert failed_rank(tmp_path) == 0
    (tmp_path / "job.log").write_text(
        "Failures:\n[1]:\n  rank      : 0 (local_rank: 0)\n  exitcode  : -15\n"
        "Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n"
        "  exitcode  : -9 (pid: 4860)  (SIGKILL)\n"
    )
    assert failed_rank(tmp_path) == 1


def test_a_jobs_temp_dir_is_inside_its_directory_and_caches_inside_the_workspace(
    jobs: RecordingJobs,
) -> None:
    """torchrun's torchelastic_* and the trainer's temp files go with the job, never to the
    machine's shared /tmp; compiler caches stay in the workspace for the next run."""
    code = (
        "import json, os, tempfile; json.dump([tempfile.gettempdir(), "
        "os.environ['TORCHINDUCTOR_CACHE_DIR'], os.environ['TRITON_CACHE_DIR']], "
        "open('where.json', 'w'))"
    )
    job = start_python(jobs, code)
    assert jobs.procs[job.name].wait(timeout=20) == 0
    where = json.loads((jobs.ws.jobs / job.name / "where.json").read_text())
    assert Path(where[0]) == jobs.ws.jobs / job.name / "tmp"
    assert all(Path(cache).parent == jobs.ws.caches for cache in where[1:])


def test_removing_a_job_whose_launcher_was_killed_stops_its_ranks_first(
    jobs: RecordingJobs,
) -> None:
    """A SIGKILLed launcher fails the job but leaves its ranks running (each in its own
    session, writing into the job's directory): removing the job stops them, then its
    directory is gone for good."""
    job, job_dir, ranks = start_launcher(jobs)
    jobs.procs[job.name].kill()
    jobs.procs[job.name].wait()
    assert jobs.get(job.name).status == "Failed"
    jobs.remove_directory(job.name, grace_s=0.1)
    assert not any(pid_alive(r["pid"]) for r in ranks)
    assert not job_dir.exists()


@pytest.mark.parametrize("stalled_look", [False, True], ids=["quiet", "stalled-look"])
def test_a_child_forked_while_its_parent_is_stopped_is_asked_to_stop_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stalled_look: bool
) -> None:
    """A process that forks as it gets SIGTERM (a shell starting a background job, a
    launcher starting its last worker): the new child is signalled too, found on the next
    look at the group, instead of outliving ``stop`` or waiting out the grace for SIGKILL.

    ``stalled-look``: the first look after the SIGTERM is as slow as on a loaded machine (it
    lists the group, then stalls until the leader has forked and exited), so it returns the
    leader alone. ``stop`` once took that look's word and returned with the child running."""
    if stalled_look:
        monkeypatch.setattr(processes, "owned_members", _stalled_second_look())
    # The child inherits SIGTERM blocked and unblocks it once its handler is in place, so a
    # SIGTERM sent at any moment after the fork reaches the handler (and none is missed).
    (tmp_path / "child.py").write_text(
        "import pathlib, signal, sys, time\n"
        "def on_term(*args):\n"
        "    pathlib.Path('term.txt').touch()\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "pathlib.Path('child.txt').touch()\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})\n"
        "time.sleep(30)\n"
    )
    # The leader exits once its child is running (not after a fixed second): ``stop`` must
    # find the child after the leader is gone as well as while it lives.
    (tmp_path / "leader.py").write_text(
        "import pathlib, signal, subprocess, sys, time\n"
        "def forks(*args):\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
        "    subprocess.Popen([sys.executable, 'child.py'])\n"
        "    deadline = time.monotonic() + 30\n"
        "    while not pathlib.Path('child.txt').exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, forks)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn([sys.executable, "leader.py"], tmp_path / "log", {}, tmp_path)
    deadline = time.monotonic() + 30
    while b"ready" not in (tmp_path / "log").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    assert stop(proc.record, grace_s=30)  # returns once all are gone; SIGKILL only after 30 s
    stopped_s, code = time.monotonic() - started, proc.wait()
    seen = sorted(p.name for p in tmp_path.iterdir())
    why = f"stop took {stopped_s:.1f} s, leader exit {code}, files {seen}, log:\n" + (
        tmp_path / "log"
    ).read_text(errors="replace")
    try:
        assert (tmp_path / "child.txt").exists() and (tmp_path / "term.txt").exists(), why
        assert not group_members(proc.pid)
    finally:
        for left in group_members(proc.pid):
            left.kill()


def _stalled_second_look() -> Callable[[ProcessRecord], list[psutil.Process]]:
    """``owned_members`` whose second call answers what the group held at the first call,
    after that group's leader has exited (the look that was listed, then descheduled)."""
    real = processes.owned_members
    calls: list[ProcessRecord] = []
    first: list[psutil.Process] = []

    def look(record: ProcessRecord) -> list[psutil.Process]:
        calls.append(record)
        members = real(record)
        if len(calls) == 1:
            first.extend(members)
        if len(calls) != 2:
            return members
        deadline = time.monotonic() + 20
        while pid_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # a zombie counts as gone: the test reaps the leader itself
        return first

    return look


def test_job_inputs_are_checked_before_the_registry_or_a_process_is_touched(
    tmp_path: Path,
) -> None:
    """A bad value, then a missing data file, fail first: the workspace here has no MLflow store."""
    from harness.backends.base import Compute
    from harness.backends.local.jobs import job_inputs
    from harness.backends.local.workspace import Workspace
    from harness.data import PreparedData
    from harness.errors import DataError, ParameterError
    from harness.model_card import model_card

    card = model_card("m", "1", "azureml://m/1", {}, {}, False)
    compute = Compute("local", "Local_CPU", gpus_per_node=1)
    data = PreparedData(str(tmp_path), {}, {})
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ParameterError):
        job_inputs(ws, card, compute, data, {"learning_rate": "-1"})
    with pytest.raises(DataError, match=r"train_sft \(not prepared\)"):
        job_inputs(ws, card, compute, data, {})
    assert not (tmp_path / "ws").exists()


def test_the_live_loss_lines_say_the_step_out_of_the_total(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from types import SimpleNamespace

    from harness.backends.local.job_files import TOTAL_STEPS
    from harness.backends.local.metrics import MetricsWatch

    client = SimpleNamespace(
        get_metric_history=lambda run, key: (
            [SimpleNamespace(step=3, value=1.25)] if key == "loss" else []
        ),
        get_run=lambda run: SimpleNamespace(data=SimpleNamespace(params={TOTAL_STEPS: "40"})),
    )
    watch = MetricsWatch(lambda: client, "job-1", every_s=0.0)  # type: ignore[arg-type,return-value]
    with caplog.at_level("INFO", logger="harness"):
        watch.say()
    assert "job job-1 step 3/40: loss 1.2500" in caplog.text


def test_the_job_marks_when_training_began_and_its_first_step_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """benchmarks/local_e2e.py reads these marks to time the job's start-up. The callback's
    base, transformers' ``TrainerCallback``, only declares no-op hooks: a stand-in spares
    the suite's one import of torch and transformers (5 s quiet, 14 s loaded)."""
    import importlib.util
    import types

    real = importlib.util.find_spec("harness.backends.local.training.metrics")  # not run
    assert real is not None and real.origin is not None
    stand_in = types.ModuleType("transformers")
    stand_in.TrainerCallback = type("TrainerCallback", (), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers", stand_in)
    found = importlib.util.spec_from_file_location("metrics_under_test", real.origin)
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)  # its own name: the real module stays
    found.loader.exec_module(module)
    MetricsCallback = module.MetricsCallback

    marks: dict[str, float] = {}
    callback = MetricsCallback(None, marks)
    callback.on_train_begin(None, None, None)
    callback.on_step_end(None, None, None)
    first = dict(marks)
    callback.on_step_end(None, None, None)
    assert set(marks) == {"train_begin", "first_step"} and marks == first
    assert marks["train_begin"] <= marks["first_step"]


def test_a_killed_job_of_the_run_is_found_dead_by_its_waiter_and_by_any_other_process(
    jobs: RecordingJobs,
) -> None:
    """SIGKILL of a running job: another process (the xdist controller, which did not start
    it) finds it dead without marking it; its waiter marks it with the exit code, which every
    process then reports. A job of another run, a finished one and one the harness is
    stopping are not dead parts of this run."""
    tags = {"tags": ownership_tags("run1", 1.0), "display_name": "tiny-job"}
    other = {"tags": ownership_tags("run2", 1.0)}
    for name, info in (("killed", tags), ("other", other), ("done", tags), ("stopping", tags)):
        jobs.start(spec(jobs.ws, name), info, argv=["sleep", "30"])
    write_status(jobs.ws.jobs / "done", "Completed")
    write_status(jobs.ws.jobs / "stopping", "CancelRequested")
    watcher = Jobs(jobs.ws)
    assert watcher.died("run1") == []
    for proc in jobs.procs.values():
        proc.kill()
        proc.wait()
    log = jobs.ws.jobs / "killed" / "job.log"
    unknown = "exited (exit code unknown: another process started it) without reporting a result"
    assert watcher.died("run1") == [
        f"fine-tune job killed (tiny-job) died: the job process {unknown}; log {log}"
    ]
    assert "died" not in read_status(jobs.ws.jobs / "killed")  # only looked
    with pytest.raises(JobError, match=r"exited \(exit code -9: killed by SIGKILL\)"):
        jobs.wait(jobs.get("killed"), 10)
    assert watcher.died("run1") == [
        "fine-tune job killed (tiny-job) died: the job process exited (exit code -9: killed "
        f"by SIGKILL) without reporting a result; log {log}"
    ]
