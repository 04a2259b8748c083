"""The local backend end to end, with figures: stage times, training throughput against a plain
Hugging Face ``Trainer`` + ``peft`` baseline (same data, same settings, same run), scoring
latency and peak memory. It also checks what the acceptance suite checks, and that no process
is left running afterwards.

Run: ``.venv/bin/python benchmarks/local_e2e.py [--workspace DIR] [--requests 50]``
(default workspace: a fresh temporary directory, so the default model is built once in it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
from harness.backends.local import LocalBackend  # noqa: E402
from harness.backends.local.job_files import JobSpec, read_status  # noqa: E402
from harness.compute import choose_instance_type  # noqa: E402
from harness.config import HarnessConfig, resolve  # noqa: E402
from harness.finetune import display_name, fit_to_component, merge_parameters  # noqa: E402
from harness.naming import deployment_name, endpoint_name, ownership_tags  # noqa: E402

LEFTOVER_PATTERN = "azmlinfsrv|harness.backends.local.(server|training)"


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
    params = fit_to_component(merge_parameters(card, {}), backend.component_inputs()).parameters
    with stages("endpoint"):
        pending = backend.begin_create_endpoint(endpoint_name(config.run_id), tags)
    with stages("submit"):
        name = display_name(card.name, params, compute.gpus_per_node)
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
        instance_type = choose_instance_type(card, config.instance_type)
        deployment = backend.deploy(endpoint, model, deployment_name(config.run_id), instance_type,
                                    tags, config.deployment_timeout_s)
    check(deployment.traffic_percent == 100, "deployment takes all traffic")
    return {"job": job, "endpoint": endpoint, "deployment": deployment, "prepared": prepared,
            "metrics": metrics.series}


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
    """Trainer + peft on the job's own spec (model, data, settings); prints tokens/s as JSON."""
    from transformers import Trainer, TrainingArguments

    from harness.backends.local.training import chat_data
    from harness.backends.local.training import finetune as sft
    from harness.backends.local.training.parameters import resolve as settings

    spec = JobSpec.read(spec_path)
    s, _ = settings(spec.parameters)
    model, tokenizer = sft.load(spec, s)
    model = sft.with_lora(model, s)
    train = sft.examples(tokenizer, spec.train_file, s)
    counted = {"tokens": 0}

    def collate(batch: list[chat_data.Example]) -> dict[str, Any]:
        out = chat_data.collate(batch, tokenizer.pad_token_id)
        counted["tokens"] += int(out["attention_mask"].sum())
        return out

    same = ("max_steps", "num_train_epochs", "per_device_train_batch_size", "learning_rate",
            "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "logging_steps",
            "max_grad_norm", "seed")
    args = TrainingArguments(
        output_dir=str(Path(tempfile.mkdtemp()) / "trainer"), report_to=[], save_strategy="no",
        eval_strategy="no", remove_unused_columns=False, disable_tqdm=True,
        use_cpu=spec.device == "cpu", **{name: getattr(s, name) for name in same},
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = trainer.train()
    runtime = time.perf_counter() - started
    figures = {"tokens_per_second": counted["tokens"] / runtime, "runtime_s": runtime}
    print(json.dumps({**figures, "steps": result.global_step, "train_loss": result.training_loss}))


def run_baseline(spec_path: Path) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--baseline", str(spec_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def leftovers() -> str:
    out = subprocess.run(
        ["pgrep", "-af", LEFTOVER_PATTERN], capture_output=True, text=True, check=False
    )
    return "\n".join(line for line in out.stdout.splitlines() if "pgrep" not in line)


def report(stages: Stages, status: dict[str, Any], scored: dict[str, Any], base: dict[str, Any],
           server_mb: float, series: dict[str, list[float]]) -> None:
    print("\n== stage wall times (s)")
    for name, seconds in [*stages.times.items(), ("total", sum(stages.times.values()))]:
        print(f"  {name:<18}{seconds:8.2f}")
    summary, loss, ev = status.get("summary", {}), series["loss"], series["eval_loss"]
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"""
== training
  loss {loss[0]:.3f} -> {loss[-1]:.3f}; eval_loss {ev[0]:.3f} -> {ev[-1]:.3f}
  harness loop: {summary.get("train_tokens_per_second", 0):.0f} tokens/s \
(train_runtime {summary.get("train_runtime", 0):.2f} s including evaluation)
  Trainer+peft baseline: {base["tokens_per_second"]:.0f} tokens/s \
(runtime {base["runtime_s"]:.2f} s, {base["steps"]} steps)
== scoring ({len(scored["latencies"])} requests, max_new_tokens 32)
  median {scored["median_ms"]:.1f} ms, p95 {scored["p95_ms"]:.1f} ms
== peak memory (RSS)
  job process {status.get("peak_rss_mb", 0):.0f} MiB; server group {server_mb:.0f} MiB; \
largest reaped child {children_mb:.0f} MiB; this process {self_mb:.0f} MiB""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        return baseline(args.baseline)
    tmp = Path(tempfile.mkdtemp(prefix="local-e2e-"))
    workspace = str(args.workspace or tmp / "workspace")
    config = resolve(cli={"backend": "local", "workspace_dir": workspace}, env={}, ini={})
    tags = ownership_tags(config.run_id, config.resource_ttl_h)
    backend, stages = LocalBackend(config), Stages()
    try:
        found = train_and_check(backend, config, stages, tmp, tags)
        scored = score_and_check(backend, found, stages, args.requests)
        server_mb = server_rss_mb(backend, found["endpoint"].name)
        with stages("delete_endpoint"):
            backend.delete_endpoint(found["endpoint"].name, config.delete_timeout_s)
    finally:
        backend.close(stop_owned=True)
    job_dir = backend.ws.jobs / found["job"].name
    base = run_baseline(job_dir / "spec.json")
    report(stages, read_status(job_dir), scored, base, server_mb, found["metrics"])
    print(f"\nanswer to the first test_gen question: {scored['answer']!r}")
    left = leftovers()
    check(not left, f"no process left running{': ' + left if left else ''}")


if __name__ == "__main__":
    main()
