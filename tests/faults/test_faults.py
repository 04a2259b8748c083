"""Real local runs, hurt the way CI, a terminal or the machine hurts them.

Each test asserts the run's exit status, that it printed no Python traceback and no endpoint
key, and that nothing is left afterwards: after the run when the run could tear down, after
the sweep when the fault allowed no teardown. The first run (two workers on a fresh
workspace) builds the tiny model that every later test reuses.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.faults.runs import (
    LocalRun,
    check_clean_exit,
    files_and_processes,
    files_holding,
    job_launcher,
    job_running,
    job_worker,
    kill_group,
    leaked,
    leftovers,
    python_tracebacks,
    report_dir,
    secret_shaped,
    server_leader,
    server_serving,
    sweep,
    temp_dir,
    text_files,
)

CI_SIGTERM_AFTER_S = 7.5  # GitHub Actions: SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after
CI_SIGKILL_AFTER_S = 2.5
LEFT = "left for `python -m harness sweep` after a second signal: "
DEAD_PART_ENDS_RUN_S = 15.0
# execnet ends a worker whose controller is gone: KeyboardInterrupt after 5 s, os._exit 10 s
# later (execnet.gateway_base.WorkerGateway._terminate_execution); twice that, for a loaded machine
ORPHANED_WORKERS_END_S = 30.0


@pytest.fixture(scope="module")
def fresh_n2(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    """``-n 2`` on a fresh workspace: both workers initialise the database and ask for the
    tiny model at the same moment."""
    run = LocalRun.start(tmp_path_factory.mktemp("faults") / "workspace", "-n", "2")
    run.wait()
    return run


@pytest.fixture
def workspace(fresh_n2: LocalRun) -> Iterator[Path]:
    """The shared workspace (tiny model built), swept after a test that left something, so
    that one failure does not cascade into the next tests (each test checks ``leftovers``
    itself; this quick look only decides whether to sweep)."""
    yield fresh_n2.workspace
    if files_and_processes(fresh_n2.workspace):
        sweep(fresh_n2.workspace, "--older-than", "0h")


def test_two_workers_on_a_fresh_workspace(fresh_n2: LocalRun) -> None:
    output = check_clean_exit(fresh_n2, 0)
    assert re.search(r" \d+ passed", output) and " failed" not in output
    assert leftovers(fresh_n2.workspace) == []


@pytest.mark.parametrize("after_s", [0.0, 0.5, 2.0, 5.0])
def test_sigterm_while_the_model_builds_under_xdist_prints_no_traceback(
    tmp_path: Path, after_s: float
) -> None:
    """CI's SIGTERM to pytest while a worker builds the tiny model on a fresh workspace (the
    other worker waits for the build's lock), at four moments of the build, so that a race
    that shows one time in four is caught: no traceback, the run is interrupted, and what it
    left (an unfinished build) the sweep removes."""
    workspace = tmp_path / "workspace"
    moment = {"SIGNAL_AT_BUILD_AFTER_S": f"{after_s}"}
    run = LocalRun.start(workspace, "-n", "2", "-p", "tests.faults.signal_at_build", env=moment)
    run.wait(timeout_s=300)
    output = run.output
    assert run.process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert not python_tracebacks(output), output
    if leftovers(workspace):
        assert sweep(workspace, "--older-than", "0h").returncode == 0
    assert leftovers(workspace) == []


def test_sigterm_during_training_tears_everything_down(workspace: Path) -> None:
    run = LocalRun.start(workspace)
    run.until(lambda: job_running(workspace), "a running job")
    run.signal(signal.SIGTERM)
    run.wait()
    check_clean_exit(run, pytest.ExitCode.INTERRUPTED)
    assert leftovers(workspace) == []


@pytest.mark.parametrize(
    "args, group", [((), True), (("-n", "2"), False)], ids=["serial-group", "xdist-controller"]
)
def test_ci_cancel_sigint_then_sigterm(workspace: Path, args: tuple[str, ...], group: bool) -> None:
    """CI's cancel, to the whole process group (serial) or to pytest alone (xdist: the
    workers only learn of it from the controller). A single signal must be handled before
    SIGTERM; whatever SIGKILL cut short is named, and the sweep finds it."""
    run = LocalRun.start(workspace, *args)
    run.until(lambda: job_running(workspace), "a running job")
    signalled = time.monotonic()
    run.signal(signal.SIGINT, group)
    for sig, wait_s in ((signal.SIGTERM, CI_SIGTERM_AFTER_S), (signal.SIGKILL, CI_SIGKILL_AFTER_S)):
        try:
            run.process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            run.signal(sig, group)
    run.wait(timeout_s=30)
    took_s = time.monotonic() - signalled
    print(f"{args or 'serial'}: the run ended {took_s:.1f} s after SIGINT")
    output = check_clean_exit(run, pytest.ExitCode.INTERRUPTED)
    assert took_s < CI_SIGTERM_AFTER_S, output
    _named_then_swept(workspace, output)


def _named_then_swept(workspace: Path, output: str) -> None:
    """What a run left is each named in a line, and the sweep removes it."""
    owned = [line for line in leftovers(workspace) if line.startswith("would delete ")]
    for line in owned:
        kind, name = line.split()[2:4]
        assert f"{LEFT}{kind} {name}" in output, output
    if leftovers(workspace):
        assert sweep(workspace, "--older-than", "0h").returncode == 0
    assert leftovers(workspace) == []


MOMENTS = {"training": job_running, "serving": server_serving}


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigkill_leaves_what_the_sweep_then_removes(
    workspace: Path, moment: str, args: tuple[str, ...]
) -> None:
    """SIGKILL of pytest (the xdist controller) while the job trains or the endpoint serves
    (a registered model then exists): the orphaned xdist workers end on their own, and after
    the sweep nothing of the run is left in the workspace (job directories, model artifacts,
    state) or in the temp dir, and no process."""
    run = LocalRun.start(workspace, *args)
    run.until(lambda: MOMENTS[moment](workspace), f"the run {moment}", timeout_s=900)
    workers = psutil.Process(run.process.pid).children() if args else []  # xdist's, if any
    run.signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    assert leftovers(workspace), "a killed run left nothing: the test proves nothing"
    # the orphaned workers hold the run's mark until they end, and the sweep rightly skips a
    # live run: a nightly sweep comes hours later, this one once they have ended on their own
    _, alive = psutil.wait_procs(workers, timeout=ORPHANED_WORKERS_END_S)
    assert not alive, f"xdist workers outlived their killed controller: {alive}"
    swept = sweep(workspace, "--older-than", "0h")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert not python_tracebacks(swept.stdout + swept.stderr)
    assert not leaked(run.keys, swept.stdout, swept.stderr)
    assert leftovers(workspace) == []


# what dies, when it is killed, how to find it, and what the run must say: the controller's
# line naming what died, how and where its log is, then that it ends the run
ENDING = r"; ending the run: the workers are stopped and what the run created is deleted"
VICTIMS = {
    "worker": (
        job_running,
        job_worker,
        rf"harness: pytest-xdist worker gw\d died \(.*\){ENDING}; its log lines are in "
        r"\S+harness\.log",
    ),
    "job": (
        job_running,
        job_launcher,
        r"harness: fine-tune job \S+ \(.*\) died: the job process exited \(exit code [^)]*\) "
        rf"without reporting a result; log \S+job\.log{ENDING}",
    ),
    "server": (
        server_serving,
        server_leader,
        r"harness: inference server of endpoint \S+ is not running: it exited "
        rf"\(exit code [^)]*\); log \S+\.log{ENDING}",
    ),
}


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_a_dead_worker_job_or_server_ends_an_xdist_run_within_15_s(
    workspace: Path, victim: str
) -> None:
    """SIGKILL of the worker that waits for the job, of the job, or of the server under
    ``-n 2``: within 15 s of the death the run has ended, saying what died and where its log
    is; the other worker does not wait for what cannot come, nor goes on with tests that can
    no longer count. The sweep then finds what is left."""
    ready, find, said = VICTIMS[victim]
    run = LocalRun.start(workspace, "-n", "2")
    run.until(lambda: ready(workspace), "the moment to kill", timeout_s=900)
    kill_group(find(workspace))
    died = time.monotonic()
    run.wait(timeout_s=120)
    took_s = time.monotonic() - died
    print(f"the run ended {took_s:.1f} s after the {victim} died")
    output = check_clean_exit(run, [pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED])
    assert re.search(said, output, re.S), output
    assert took_s < DEAD_PART_ENDS_RUN_S, output
    if leftovers(workspace):
        assert sweep(workspace, "--older-than", "0h").returncode == 0
    assert leftovers(workspace) == []


def test_a_killed_server_and_a_scoring_timeout_leak_no_key(workspace: Path, tmp_path: Path) -> None:
    """Scoring times out (--scoring-timeout 0.01), then the server is killed before the last
    test: neither failure puts the key anywhere (terminal, JUnit XML, report files, history,
    any file of the workspace or the temp dir) nor leaves a token-shaped string in a text
    file, the dead server is named with its exit, and the teardown still removes everything."""
    junit = tmp_path / "junit.xml"
    run = LocalRun.start(
        workspace,
        "-p",
        "kill_server",
        "--scoring-timeout",
        "0.01",
        "--junitxml",
        str(junit),
        "--finetune-param",
        "max_steps=10",
    )
    run.wait()
    output = check_clean_exit(run, pytest.ExitCode.TESTS_FAILED, junit=junit.read_text())
    outputs = [workspace, temp_dir(workspace), report_dir(workspace), junit]
    assert not files_holding(run.keys, *outputs)
    texts = {"terminal": output, **text_files(*outputs)}
    assert any(name.endswith("report.json") for name in texts)
    assert secret_shaped(texts) == []
    assert "got no reply within 0.01 s" in output
    assert re.search(
        r"inference server of endpoint \S+ is not running: it exited \(exit code "
        r"-9: killed by SIGKILL\)",
        output,
    ), output
    assert leftovers(workspace) == []


@pytest.fixture
def strangers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two process groups that are not the harness's, as ``setsid sleep`` makes them."""
    started = [subprocess.Popen(["setsid", "sleep", "120"]) for _ in range(2)]
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_stale_state_naming_a_reused_pid_stops_nothing(
    workspace: Path, strangers: list[subprocess.Popen[bytes]]
) -> None:
    """A killed run's endpoint state names a server whose pid now belongs to a stranger."""
    from harness.naming import ownership_tags

    reused = psutil.Process(strangers[0].pid)
    key = secrets.token_urlsafe(32)
    state = {
        "name": "ep-stale",
        "port": 1,
        "keys": [key, key],
        "provisioning_state": "Succeeded",
        "tags": ownership_tags("hstale0001", 1.0),
        "created": 0.0,
        "deployment": {
            "name": "dep",
            "process": {
                "pid": reused.pid,
                "started": reused.create_time() - 3600,
                "token": "0" * 32,
                "cmdline": ["python", "-m", "harness.backends.local.server"],
            },
        },
    }
    (workspace / "endpoints").mkdir(exist_ok=True)
    (workspace / "endpoints" / "ep-stale.json").write_text(json.dumps(state))
    swept = sweep(workspace, "--older-than", "0h")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert [proc.poll() for proc in strangers] == [None, None]
    assert f"not stopping pid {reused.pid} `sleep 120`" in swept.stderr
    assert not leaked([key], swept.stdout, swept.stderr)
    assert leftovers(workspace) == []


def test_a_sweep_during_a_run_spares_it(workspace: Path) -> None:
    """``sweep --older-than 0h`` (CI runs it) while a run trains: the run still passes."""
    run = LocalRun.start(workspace)
    run.until(lambda: job_running(workspace), "a running job")
    swept = sweep(workspace, "--older-than", "0h")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert re.search(r"skipping job \S+: run \S+ is still running", swept.stdout), swept.stdout
    assert re.search(r"skipping endpoint \S+: run \S+ is still running", swept.stdout)
    run.until(lambda: server_serving(workspace), "a deployment", timeout_s=900)
    assert sweep(workspace, "--older-than", "0h").returncode == 0
    run.wait()
    output = check_clean_exit(run, 0)
    assert re.search(r" \d+ passed", output) and " failed" not in output
    assert leftovers(workspace) == []
