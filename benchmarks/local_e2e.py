"""The local backend end to end, with figures: stage times, training throughput, scoring latency
and peak memory. It also checks what the acceptance suite checks, and that no process is left
running afterwards.

Training throughput is real (unpadded) tokens per second of training, evaluation excluded, and
is compared in the same run, on the same data and settings: the job (TRL's SFTTrainer) against a
plain Hugging Face ``Trainer`` + ``peft`` baseline with padded batches, and the job with two
processes (torchrun; gloo on a CPU, one GPU each on a GPU box) against one. Other work on the
machine makes single figures noisy: ``--repeat N`` runs the comparison N times, interleaved,
and prints the best and the median of each. Targets: the job at least 1.0x the baseline on a
CPU; with ``--finetune-param packing=true`` on a GPU, at least 1.5x.

Start-up is timed from the harness's side: from "job submitted" to the trainer's first step (the
job's own marks, in its status file) and from "deployment started" to the server answering,
each split into what it is spent on, with the harness's own import time in each process
(``python -X importtime``, the self time of ``harness.*`` modules). Target: at most 3 s of
each is the harness's own (imports, files), the rest the libraries' and the model's.

Run: ``.venv/bin/python benchmarks/local_e2e.py [--workspace DIR] [--requests 50] [--repeat 3]
[--compute-sku Local_GPU] [--finetune-param packing=true ...] [--model-cache DIR]`` (default
workspace: a fresh temporary directory, which copies the default model from the machine's
model cache, building it there first when the cache has no build).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import data, scoring  # noqa: E402
from harness.backends.base import JobRun  # noqa: E402
from harness.backends.local import LocalBackend, deployments  # noqa: E402
from harness.backends.local.compute import local_compute  # noqa: E402
from harness.backends.local.job_files import JobSpec, read_status  # noqa: E402
from harness.compute import choose_instance_type  # noqa: E402
from harness.config import HarnessConfig, resolve  # noqa: E402
from harness.errors import ComputeError  # noqa: E402
from harness.finetune_params import display_name, fit_to_component, merge_parameters  # noqa: E402
from harness.naming import deployment_name, endpoint_name, ownership_tags  # noqa: E402

LEFTOVER_PATTERN = "azmlinfsrv|harness.backends.local.(server|training)|torch.distributed.run"
TRL_ONLY = frozenset({"packing", "packing_strategy", "padding_free", "max_length"})


class Stages:
    """Wall time of each named stage, in order."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = time.perf_counter() - started


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"CHECK FAILED: {what}")
    print(f"ok: {what}")


def train_and_check(
    backend: LocalBackend, config: HarnessConfig, stages: Stages, tmp: Path, tags: dict[str, str]
) -> dict[str, Any]:
    with stages("foundation_model"):
        card = backend.get_foundation_model(config.model_name, config.model_version)
    with stages("compute"):
        compute = backend.ensure_compute(card, config.compute_name, config.compute_sku, tags)
    with stages("data"):
        prepared = data.prepare(config.dataset, config.dataset_percent, tmp / "data")
    merged = merge_parameters(card, config.finetune_overrides)
    params = fit_to_component(merged, backend.component_inputs()).parameters
    with stages("endpoint"):
        pending = backend.begin_create_endpoint(endpoint_name(config.run_id), tags)
    with stages("submit"):
        name = display_name(card.name, params, compute.gpus_per_node)
        submitted = time.time()
        job = backend.submit_finetune(card, compute, prepared, params, name, tags)
    with stages("train"):
        job = backend.wait_for_job(job, config.job_timeout_s)
    metrics = backend.job_metrics(job)
    loss, eval_loss = metrics.values("loss"), metrics.values("eval_loss")
    check(len(loss) >= 2 and loss[-1] < loss[0], f"loss went down {loss[0]:.3f} -> {loss[-1]:.3f}")
    check(
        len(eval_loss) >= 2 and eval_loss[-1] < eval_loss[0],
        f"eval_loss went down {eval_loss[0]:.3f} -> {eval_loss[-1]:.3f}",
    )
    with stages("register"):
        model = backend.register_model(card, job, tags)
    check(model.job_name == job.name, f"model {model.id} has lineage to job {job.name}")
    endpoint = backend.wait_for_endpoint(pending.name, config.endpoint_timeout_s)
    with stages("deploy"):
        deploy_started = time.time()
        instance_type = choose_instance_type(card, config.instance_type)
        deployment = backend.deploy(
            endpoint,
            model,
            deployment_name(config.run_id),
            instance_type,
            tags,
            config.deployment_timeout_s,
        )
    check(deployment.traffic_percent == 100, "deployment takes all traffic")
    answering = time.time()
    return {
        "submitted": submitted,
        "deploy_started": deploy_started,
        "answering": answering,
        "job": job,
        "endpoint": endpoint,
        "deployment": deployment,
        "prepared": prepared,
        "metrics": metrics.series,
        "card": card,
        "params": params,
        "sku": compute.sku,
    }


def score_and_check(
    backend: LocalBackend, found: dict[str, Any], stages: Stages, n: int
) -> dict[str, Any]:
    samples = data.scoring_samples(found["prepared"], 3)
    endpoint, deployment = found["endpoint"], found["deployment"]
    with stages("first_score"):
        reply = backend.invoke(endpoint, deployment, scoring.build_request(samples[0]))
    text = scoring.parse_response(reply.body, reply.status_code).text
    check(
        reply.status_code == 200 and bool(text.strip()),
        f"scoring answers: {samples[0][-1]['content']!r} -> {text!r}",
    )
    nested = backend.invoke(endpoint, deployment, scoring.build_request(samples[1], nested=True))
    check(nested.status_code == 200, "the notebook's nested request form is accepted")
    for key in (None, "not-the-key"):
        raw = backend.invoke_raw(endpoint, scoring.build_request(samples[0]), key)
        check(raw.status_code == 401, f"key {key!r} is refused with {raw.status_code}")
    latencies = []
    for i in range(n):
        request = scoring.build_request(samples[i % len(samples)], {"max_new_tokens": 32})
        latencies.append(backend.invoke(endpoint, deployment, request).elapsed_s)
    latencies.sort()
    return {
        "latencies": latencies,
        "median_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[max(0, round(0.95 * len(latencies)) - 1)],
        "answer": text,
    }


def server_rss_mb(backend: LocalBackend, name: str) -> float:
    """Resident memory of the endpoint's whole server group (master and workers)."""
    import psutil

    from harness.backends.local import endpoints

    pgid = endpoints.require(backend.ws, name).pgid
    total = 0
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                total += int(proc.memory_info().rss)
    return total / 2**20


def baseline(spec_path: Path) -> None:
    """Trainer + peft on the job's own spec (model, rows, settings, precision, attention), with
    padded batches; prints real tokens per second of training as JSON."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from harness.backends.local.training import arguments, chat_data, finetune
    from harness.backends.local.training.parameters import resolve as settings

    spec = JobSpec.read(spec_path)
    s, _ = settings(spec.parameters)
    plan = arguments.plan(s, finetune.probe(spec.device))
    model, tokenizer = finetune.load(spec, plan)
    model = get_peft_model(model, LoraConfig(**arguments.lora_config(s)))
    limit = arguments.max_length(s, tokenizer.model_max_length)
    encode = chat_data.encoder(tokenizer)

    def labelled(path: str) -> list[dict[str, list[int]]]:
        rows = chat_data.rows(chat_data.read_conversations(Path(path)), encode, limit)
        return [
            {
                "input_ids": r["input_ids"],
                "labels": [
                    t if m else -100
                    for t, m in zip(r["input_ids"], r["assistant_masks"], strict=True)
                ],
            }
            for r in rows
        ]

    train, test = labelled(spec.train_file), labelled(spec.test_file)
    pad, counted = DataCollatorForSeq2Seq(tokenizer, padding=True), {"tokens": 0}

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        out = pad(batch)
        counted["tokens"] += int(out["attention_mask"].sum())
        return dict(out)

    config = arguments.sft_config(s, plan, spec.device, tempfile.mkdtemp(), limit)
    same = {k: v for k, v in config.items() if k not in TRL_ONLY}
    args = TrainingArguments(**{**same, "eval_strategy": "no", "remove_unused_columns": False})
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=pad)  # type: ignore[arg-type]
    before = trainer.evaluate(eval_dataset=test)["eval_loss"]  # type: ignore[arg-type]
    trainer.data_collator = collate
    result = trainer.train()
    runtime = float(result.metrics["train_runtime"])
    print(
        json.dumps(
            {
                "tokens_per_second": counted["tokens"] / runtime,
                "runtime_s": runtime,
                "steps": result.global_step,
                "train_loss": result.training_loss,
                "eval_loss_before": before,
            }
        )
    )


def run_baseline(spec_path: Path) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--baseline", str(spec_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if out.returncode:
        raise SystemExit(f"the baseline failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def train_job(
    backend: LocalBackend, found: dict[str, Any], processes: int, tags: dict[str, str]
) -> tuple[JobRun, dict[str, Any]]:
    """One more job on the same model, data and parameters with ``processes`` processes."""
    card, params = found["card"], found["params"]
    compute = local_compute(card, "local", found["sku"], processes)
    name = display_name(card.name, params, compute.gpus_per_node)
    job = backend.submit_finetune(card, compute, found["prepared"], params, name, tags)
    job = backend.wait_for_job(job, 1800)
    return job, read_status(backend.ws.jobs / job.name)


def same_loss(job: float, padded: float, gpu: bool) -> None:
    """The job's batches (padding-free on a CPU, with flash attention or packing on a GPU) and
    the baseline's padded ones give the untrained model the same eval loss: no conversation
    attended to another. On a GPU, half precision and packed rows (other batch means) leave
    a little more room."""
    check(
        abs(job - padded) < (2e-2 if gpu else 1e-3) * max(1.0, abs(padded)),
        f"eval loss before training: job {job:.6f}, padded baseline {padded:.6f} "
        "(conversations kept apart)",
    )


def compare_training(
    backend: LocalBackend, found: dict[str, Any], tags: dict[str, str], repeat: int
) -> dict[str, list[float]]:
    """Tokens/s of the job (1 and 2 processes) and of the baseline, ``repeat`` times each,
    interleaved so that load from elsewhere hits all three alike."""
    first = read_status(backend.ws.jobs / found["job"].name)["summary"]
    figures: dict[str, list[float]] = {
        "job": [first["train_tokens_per_second"]],
        "baseline": [],
        "job_2_processes": [],
    }
    try:
        local_compute(found["card"], "local", found["sku"], 2)
        two = True
    except ComputeError as exc:  # a single GPU
        print(f"no two-process comparison: {exc}")
        two = False
    for i in range(repeat):
        if i:
            job, status = train_job(backend, found, 1, tags)
            figures["job"].append(status["summary"]["train_tokens_per_second"])
            backend.delete_job(job.name, 30)
        spec = backend.ws.jobs / found["job"].name / "spec.json"
        base = run_baseline(spec)
        if i == 0:
            same_loss(
                found["metrics"]["eval_loss"][0],
                base["eval_loss_before"],
                found["sku"] == "Local_GPU",
            )
        figures["baseline"].append(base["tokens_per_second"])
        if not two:
            continue
        job, status = train_job(backend, found, 2, tags)
        check(
            status["summary"]["total_tokens"] > first["total_tokens"] * 1.5,
            "two processes train on twice the batches (global batch = 2 x per-device batch)",
        )
        figures["job_2_processes"].append(status["summary"]["train_tokens_per_second"])
        backend.delete_job(job.name, 30)
    return figures


JOB_STEPS = (  # the job's own start-up marks, in order (training/__main__.py, finetune.py)
    ("main", "spawn, Python and the job module's imports", True),
    ("job_modules_imported", "torch and transformers imports (callback's base)", False),
    ("mlflow_opened", "MLflow import and client", False),
    ("settings_logged", "settings, device probe, parameters to MLflow", False),
    ("libraries_imported", "peft and TRL imports", False),
    ("model_loaded", "model and tokenizer loaded", False),
    ("data_tokenised", "conversations tokenised (chat_data)", True),
    ("trainer_built", "SFTTrainer built", False),
    ("evaluated_before", "eval loss before training", False),
    ("train_begin", "trainer set-up", False),
    ("first_step", "first optimizer step", False),
)
SERVER_STEPS = (  # the server's own start-up marks, in order (server/__main__.py, score.py)
    ("main", "spawn, Python and the launcher's imports", True),
    ("server_imported", "azureml-inference-server-http import", False),
    ("init_started", "gunicorn worker forked, scoring script loaded", False),
    ("libraries_imported", "torch and transformers imports", False),
    ("model_loaded", "model and tokenizer loaded", False),
)
JOB_MODULES = (
    "harness.backends.local.training.__main__",
    "harness.backends.local.training.finetune",
)
SERVER_MODULES = (
    "harness.backends.local.server.__main__",
    "harness.backends.local.server.score",
    "harness.backends.local.server.generator",
)
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def harness_import_s(modules: tuple[str, ...]) -> tuple[float, float]:
    """(self time of the ``harness.*`` modules, whole import) of ``modules`` in a fresh
    interpreter, from ``python -X importtime``: the harness's own import cost in that process."""
    code = "import " + ", ".join(modules)
    argv = [sys.executable, "-X", "importtime", "-c", code]
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    own = whole = 0
    for found in IMPORT_LINE.finditer(err):
        own += int(found[1]) if found[4].startswith("harness") else 0
        whole += int(found[2]) if not found[3] else 0
    return own / 1e6, whole / 1e6


def job_startup(backend: LocalBackend, found: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """(step, seconds, the harness's own) from "job submitted" to the first optimizer step.
    The process's start time (psutil's, in clock ticks since boot) is off by up to a second
    against ``time.time()``, so the first step runs from the submission to the job's first mark."""
    marks = read_status(backend.ws.jobs / found["job"].name).get("startup", {})
    return _steps(found["submitted"], _marked(marks, JOB_STEPS))


def server_startup(backend: LocalBackend, found: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """(step, seconds, the harness's own) from "deployment started" to the server answering,
    from the server's own marks (``harness.backends.local.server.mark``); read before the
    endpoint goes, since the marks live in its temp dir."""
    path = deployments.startup_marks(backend.ws, found["endpoint"].name)
    marks = json.loads(path.read_text()) if path.is_file() else {}
    moments = _marked(marks, SERVER_STEPS)
    moments.append(("first health answer (GET / polled every 0.2 s)", found["answering"], False))
    return _steps(found["deploy_started"], moments)


def _marked(
    marks: dict[str, Any], steps: tuple[tuple[str, str, bool], ...]
) -> list[tuple[str, float, bool]]:
    """(label, moment, the harness's own) of each step a process marked, in ``steps``' order."""
    return [(label, float(marks[key]), own) for key, label, own in steps if key in marks]


def _steps(start: float, moments: list[tuple[str, float, bool]]) -> list[tuple[str, float, bool]]:
    rows, previous = [], start
    for label, moment, own in moments:
        rows.append((label, moment - previous, own))
        previous = moment
    return rows


def print_startup(
    title: str, rows: list[tuple[str, float, bool]], imports: tuple[float, float]
) -> None:
    own = sum(seconds for _, seconds, mine in rows if mine)
    print(f"\n== {title}: {sum(s for _, s, _ in rows):.2f} s")
    for label, seconds, mine in rows:
        print(f"  {label:<48}{seconds:7.2f}{'  (harness)' if mine else ''}")
    print(
        f"  harness's own: {own:.2f} s of the steps marked, of which imports of harness modules "
        f"{imports[0]:.2f} s (whole import of the process's modules {imports[1]:.2f} s); "
        "target: at most 3 s"
    )


def leftovers(workspace: str) -> str:
    """This run's processes still alive (other runs on a shared machine are not ours)."""
    out = subprocess.run(
        ["pgrep", "-af", LEFTOVER_PATTERN], capture_output=True, text=True, check=False
    )
    return "\n".join(
        line for line in out.stdout.splitlines() if "pgrep" not in line and workspace in line
    )


def spread(values: list[float]) -> str:
    return f"best {max(values):8.0f}, median {statistics.median(values):8.0f} tokens/s"


def ratio(a: list[float], b: list[float]) -> str:
    return f"best {max(a) / max(b):.2f}x, median {statistics.median(a) / statistics.median(b):.2f}x"


def report(
    stages: Stages,
    status: dict[str, Any],
    scored: dict[str, Any],
    tps: dict[str, Any],
    server_mb: float,
    series: dict[str, list[float]],
) -> None:
    print("\n== stage wall times (s)")
    for name, seconds in [*stages.times.items(), ("total", sum(stages.times.values()))]:
        print(f"  {name:<18}{seconds:8.2f}")
    summary, loss, ev = status.get("summary", {}), series["loss"], series["eval_loss"]
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    job, base, two = tps["job"], tps["baseline"], tps["job_2_processes"]
    print(f"""
== training (real tokens per second of training, evaluation excluded; {len(base)} run(s) each)
  loss {loss[0]:.3f} -> {loss[-1]:.3f}; eval_loss {ev[0]:.3f} -> {ev[-1]:.3f}; \
train_runtime {summary.get("train_runtime", 0):.2f} s (evaluation included)
  job (TRL SFTTrainer), 1 process:  {spread(job)}
  Trainer + peft baseline:          {spread(base)}
  job, 2 processes:                 {spread(two) if two else "not run"}
  job / baseline: {ratio(job, base)} (target: at least 1.0x on a CPU, 1.5x packed on a GPU)
  2 processes / 1: {ratio(two, job) if two else "not run"}
== scoring ({len(scored["latencies"])} requests, max_new_tokens 32)
  median {scored["median_ms"]:.1f} ms, p95 {scored["p95_ms"]:.1f} ms
== peak memory (RSS)
  job process {status.get("peak_rss_mb", 0):.0f} MiB; server group {server_mb:.0f} MiB; \
largest reaped child {children_mb:.0f} MiB; this process {self_mb:.0f} MiB""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--model-cache", type=Path, help="default: the machine's model cache")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="training comparisons to run")
    parser.add_argument("--compute-sku", help="Local_CPU or Local_GPU (default: the best)")
    parser.add_argument("--finetune-param", action="append", default=[], help="key=value")
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        return baseline(args.baseline)
    tmp = Path(tempfile.mkdtemp(prefix="local-e2e-"))
    workspace = str(args.workspace or tmp / "workspace")
    cli = {
        "backend": "local",
        "workspace_dir": workspace,
        "model_cache_dir": args.model_cache,
        "finetune_params": args.finetune_param,
        "compute_sku": args.compute_sku,
        "instance_type": args.compute_sku,
    }
    config = resolve(cli={k: v for k, v in cli.items() if v}, env={}, ini={})
    tags = ownership_tags(config.run_id, config.resource_ttl_h)
    backend, stages = LocalBackend(config), Stages()
    try:
        found = train_and_check(backend, config, stages, tmp, tags)
        scored = score_and_check(backend, found, stages, args.requests)
        server_mb = server_rss_mb(backend, found["endpoint"].name)
        server_rows = server_startup(backend, found)  # before the endpoint's state goes
        with stages("delete_endpoint"):
            backend.delete_endpoint(found["endpoint"].name, config.delete_timeout_s)
        throughput = compare_training(backend, found, tags, max(1, args.repeat))
    finally:
        backend.close(stop_owned=True)
    status = read_status(backend.ws.jobs / found["job"].name)
    report(stages, status, scored, throughput, server_mb, found["metrics"])
    print_startup(
        "job start-up, from submitted to the first step",
        job_startup(backend, found),
        harness_import_s(JOB_MODULES),
    )
    print_startup(
        "server start-up, from deployment started to answering",
        server_rows,
        harness_import_s(SERVER_MODULES),
    )
    print(f"\nanswer to the first test_gen question: {scored['answer']!r}")
    left = leftovers(workspace)
    check(not left, f"no process left running{': ' + left if left else ''}")


if __name__ == "__main__":
    main()
