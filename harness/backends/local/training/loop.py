"""The training loop: a plain torch loop with the Hugging Face Trainer's semantics and names.

Short enough to read in one go: optimizer and scheduler from transformers, gradient
accumulation, clipping, logging every ``logging_steps`` and evaluation before, during and after
training. Its throughput is on par with ``Trainer`` + ``peft`` on the tiny CPU model
(``benchmarks/local_e2e.py`` measures both in the same run) and it reports evaluation apart
from training time.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.local.training.chat_data import Example, batches, collate
from harness.backends.local.training.metrics import MetricsLog
from harness.backends.local.training.parameters import TrainSettings


@dataclass
class Progress:
    """Counters of one training run."""

    step: int = 0
    tokens: int = 0
    samples: int = 0
    window: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    grad_norm: float = 0.0
    last_eval_step: int = -1
    eval_time: float = 0.0


def total_steps(n_examples: int, s: TrainSettings) -> int:
    """Optimizer steps: ``max_steps`` when positive, else whole epochs (as Trainer counts)."""
    per_epoch = steps_per_epoch(n_examples, s)
    return s.max_steps if s.max_steps > 0 else per_epoch * s.num_train_epochs


def steps_per_epoch(n_examples: int, s: TrainSettings) -> int:
    batches_per_epoch = math.ceil(n_examples / s.per_device_train_batch_size)
    return max(1, batches_per_epoch // s.gradient_accumulation_steps)


def make_optimizer(model: Any, s: TrainSettings, steps: int) -> tuple[Any, Any]:
    import torch
    from transformers import get_scheduler, optimization

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer: Any
    if s.optim == "adafactor":
        optimizer = optimization.Adafactor(  # type: ignore[no-untyped-call]
            params,
            lr=s.learning_rate,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
            weight_decay=s.weight_decay,
        )
    else:
        optimizer = torch.optim.AdamW(
            params,
            lr=s.learning_rate,
            betas=(s.adam_beta1, s.adam_beta2),
            eps=s.adam_epsilon,
            weight_decay=s.weight_decay,
        )
    scheduler = get_scheduler(
        s.lr_scheduler_type, optimizer, num_warmup_steps=s.warmup_steps, num_training_steps=steps
    )
    return optimizer, scheduler


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for precision 16 on a GPU that supports it; full precision otherwise."""
    import torch

    if device == "cuda" and precision == "16" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(
    model: Any, examples: Sequence[Example], s: TrainSettings, pad_id: int, device: str
) -> float:
    """Mean loss per trained token over ``examples``."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches(examples, s.per_device_eval_batch_size, None):
            inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
            with autocast(device, s.precision):
                loss = model(**inputs).loss
            tokens = int((inputs["labels"][:, 1:] != -100).sum())
            total, count = total + float(loss) * tokens, count + tokens
    model.train()
    return total / max(1, count)


def stream(examples: Sequence[Example], s: TrainSettings) -> Iterator[list[Example]]:
    """Training batches, reshuffled every epoch, for as long as the loop asks."""
    epoch = 0
    while True:
        yield from batches(examples, s.per_device_train_batch_size, s.seed + epoch)
        epoch += 1


class Loop:
    """One training run over encoded examples, logging to ``log``."""

    def __init__(
        self, model: Any, s: TrainSettings, log: MetricsLog, pad_id: int, device: str
    ) -> None:
        self.model, self.s, self.log, self.pad_id, self.device = model, s, log, pad_id, device

    def run(self, train: Sequence[Example], test: Sequence[Example]) -> dict[str, float]:
        steps = total_steps(len(train), self.s)
        per_epoch = steps_per_epoch(len(train), self.s)
        optimizer, scheduler = make_optimizer(self.model, self.s, steps)
        progress, started = Progress(), time.perf_counter()
        self.model.train()
        self._evaluate(test, progress)
        batches_left = stream(train, self.s)
        while progress.step < steps:
            self._update(batches_left, optimizer, scheduler, progress)
            self._after_step(test, progress, per_epoch, scheduler, final=progress.step == steps)
        return self._summary(progress, time.perf_counter() - started, per_epoch)

    def _update(
        self, source: Iterator[list[Example]], optimizer: Any, scheduler: Any, p: Progress
    ) -> None:
        import torch

        loss_sum = 0.0
        for _ in range(self.s.gradient_accumulation_steps):
            batch = next(source)
            inputs = {k: v.to(self.device) for k, v in collate(batch, self.pad_id).items()}
            with autocast(self.device, self.s.precision):
                loss = self.model(**inputs).loss / self.s.gradient_accumulation_steps
            loss.backward()
            loss_sum += float(loss.detach())
            p.tokens += int(inputs["attention_mask"].sum())
            p.samples += len(batch)
        p.grad_norm = float(
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.s.max_grad_norm)
        )
        optimizer.step(), scheduler.step(), optimizer.zero_grad(set_to_none=True)
        p.step += 1
        p.window.append(loss_sum)
        p.losses.append(loss_sum)

    def _after_step(
        self, test: Sequence[Example], p: Progress, per_epoch: int, scheduler: Any, final: bool
    ) -> None:
        epoch_end = p.step % per_epoch == 0
        by_steps = self.s.logging_strategy == "steps" and p.step % max(1, self.s.logging_steps) == 0
        if p.window and (by_steps or final or (self.s.logging_strategy == "epoch" and epoch_end)):
            self.log.log(
                p.step,
                {
                    "loss": sum(p.window) / len(p.window),
                    "grad_norm": p.grad_norm,
                    "learning_rate": scheduler.get_last_lr()[0],
                    "epoch": p.step / per_epoch,
                },
            )
            p.window.clear()
        strategy = self.s.evaluation_strategy
        if (
            final
            or (strategy == "epoch" and epoch_end)
            or (strategy == "steps" and p.step % max(1, self.s.eval_steps) == 0)
        ):
            self._evaluate(test, p)

    def _evaluate(self, test: Sequence[Example], p: Progress) -> None:
        if self.s.evaluation_strategy == "disable" or not test or p.last_eval_step == p.step:
            return
        started = time.perf_counter()
        loss = evaluate(self.model, test, self.s, self.pad_id, self.device)
        elapsed = time.perf_counter() - started
        self.log.log(p.step, {"eval_loss": loss, "eval_runtime": elapsed})
        p.last_eval_step, p.eval_time = p.step, p.eval_time + elapsed

    def _summary(self, p: Progress, runtime: float, per_epoch: int) -> dict[str, float]:
        """Final metrics; throughput counts training time only (evaluation excluded)."""
        busy = max(1e-9, runtime - p.eval_time)
        summary = {
            "train_loss": sum(p.losses) / max(1, len(p.losses)),
            "train_runtime": runtime,
            "train_samples_per_second": p.samples / busy,
            "train_steps_per_second": p.step / busy,
            "train_tokens_per_second": p.tokens / busy,
            "total_tokens": float(p.tokens),
        }
        self.log.log(p.step, {**summary, "epoch": p.step / per_epoch})
        return summary
