"""Compute is this machine: ``Local_GPU`` when CUDA is available, else ``Local_CPU``.

``Compute.gpus_per_node`` is the number of data-parallel processes the job trains with, as
``number_of_gpu_to_use_finetuning`` is on Azure: every GPU torch sees (or the first
``--local-train-processes`` of them) on ``Local_GPU``; on ``Local_CPU`` one process, or
``--local-train-processes`` processes sharing the cores over gloo, which is how a CPU-only
machine proves data-parallel training. The display name's batch size follows it.
"""

from __future__ import annotations

import functools
import os

from harness.backends.base import Compute, VmSize
from harness.compute import check_finetune_sku
from harness.errors import ComputeError
from harness.model_card import ModelCard

# Stand-ins for Azure VM sizes: the model's allow-list tags list them, so the same allow-list
# checks that guard Azure runs guard local runs too.
LOCAL_CPU = "Local_CPU"
LOCAL_GPU = "Local_GPU"
LOCAL_SKUS = (LOCAL_CPU, LOCAL_GPU)


@functools.cache
def cuda_devices() -> int:
    """CUDA devices torch can use (0 without a GPU or without CUDA support)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def available_skus() -> tuple[str, ...]:
    return LOCAL_SKUS if cuda_devices() else (LOCAL_CPU,)


def vm_sizes() -> list[VmSize]:
    """This machine's SKUs, as a region's size list: Local_CPU, and Local_GPU with CUDA."""
    cores = os.cpu_count() or 1
    gpus = cuda_devices()
    return [
        VmSize(LOCAL_CPU, gpus=0, vcpus=cores),
        *([VmSize(LOCAL_GPU, gpus=gpus, vcpus=cores)] if gpus else []),
    ]


def machine_sku() -> str:
    """The best SKU of this machine."""
    return LOCAL_GPU if cuda_devices() else LOCAL_CPU


def check_available(sku: str, option: str) -> str:
    """The canonical local SKU name for ``sku``, or ComputeError naming what exists."""
    by_key = {name.casefold(): name for name in available_skus()}
    if sku.casefold() in by_key:
        return by_key[sku.casefold()]
    hint = " (no CUDA GPU is visible to torch)" if sku.casefold() == LOCAL_GPU.casefold() else ""
    raise ComputeError(
        f"SKU {sku} does not exist on the local backend{hint}; this machine offers "
        f"{', '.join(available_skus())}; pass {option} with one of them or leave it unset"
    )


def local_compute(
    card: ModelCard, name: str, sku: str | None, processes: int | None = None
) -> Compute:
    """This machine as the fine-tune compute, checked against the model's allow-list."""
    chosen = check_available(sku, "--compute-sku") if sku else machine_sku()
    check_finetune_sku(card, chosen)
    ranks = training_processes(chosen, processes)
    return Compute(name=name, sku=chosen, gpus_per_node=ranks, created_by_harness=False)


def training_processes(sku: str, asked: int | None) -> int:
    """One process per GPU (at most ``asked``) on Local_GPU; ``asked`` or 1 on Local_CPU."""
    if sku != LOCAL_GPU:
        return asked or 1
    gpus = cuda_devices()
    if asked is not None and asked > gpus:
        raise ComputeError(
            f"--local-train-processes {asked} asks for more GPU processes than the {gpus} "
            f"CUDA GPU(s) torch sees; pass at most {gpus}, or --compute-sku {LOCAL_CPU} to "
            "train with CPU processes"
        )
    return asked or gpus


def serving_device(instance_type: str) -> str:
    """The torch device a deployment on ``instance_type`` uses."""
    return "cuda" if check_available(instance_type, "--instance-type") == LOCAL_GPU else "cpu"


def training_device(compute: Compute) -> str:
    return "cuda" if check_available(compute.sku, "--compute-sku") == LOCAL_GPU else "cpu"
