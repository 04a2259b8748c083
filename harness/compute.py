"""Which VM sizes a model may be fine-tuned and served on, and how many GPUs they have.

The registry's allow-lists are the authority; the notebook's own default size
(Standard_ND40rs_v2) left the fine-tune allow-list in 2024-05, so defaults come from the list.
Checks are case-insensitive because Azure reports sizes in inconsistent case.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ComputeError
from harness.tags import ModelCard

K80_DENY_LIST = frozenset({"standard_nc6", "standard_nc12", "standard_nc24", "standard_nc24r"})

_FINETUNE_OPTION = "--compute-sku"
_INFERENCE_OPTION = "--instance-type"


def _allowed(value: str, allow_list: Iterable[str]) -> bool:
    return value.casefold() in {x.casefold() for x in allow_list}


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values) or "(none)"


def check_finetune_sku(card: ModelCard, sku: str) -> None:
    """Refuse a size the model cannot be fine-tuned on, before any cluster is created."""
    allow_list = card.finetune_allow_list
    if allow_list is not None:
        if not _allowed(sku, allow_list):
            raise ComputeError(
                f"VM size {sku} is not allowed for fine-tuning {card.label}; "
                f"allowed: {_listed(allow_list)}; pass {_FINETUNE_OPTION} with one of them"
            )
        return
    if sku.casefold() in K80_DENY_LIST:
        raise ComputeError(
            f"VM size {sku} has K80 GPUs, which fine-tuning does not support, and "
            f"{card.label} has no finetune_compute_allow_list tag to say otherwise; "
            f"denied: {_listed(sorted(K80_DENY_LIST))}; pass {_FINETUNE_OPTION} with a newer "
            "GPU size"
        )


def check_inference_instance(card: ModelCard, instance_type: str) -> None:
    """Refuse an instance type the model cannot be served on (the seed only warned)."""
    allow_list = card.inference_allow_list
    if allow_list is not None and not _allowed(instance_type, allow_list):
        raise ComputeError(
            f"instance type {instance_type} is not allowed for deploying {card.label}; "
            f"allowed: {_listed(allow_list)}; pass {_INFERENCE_OPTION} with one of them"
        )


def gpus_for_sku(sku: str, sizes: Iterable[tuple[str, int]]) -> int:
    """GPUs per node of ``sku`` from the workspace's size list; 0 is returned, not judged."""
    pairs = list(sizes)
    for name, gpus in pairs:
        if name.casefold() == sku.casefold():
            return int(gpus)
    raise ComputeError(
        f"VM size {sku} is not available in this workspace's region; available: "
        f"{_listed(sorted(name for name, _ in pairs))}; pass {_FINETUNE_OPTION} with one of "
        "them or use a workspace in another region"
    )


def default_finetune_sku(card: ModelCard) -> str:
    """The first allow-listed size: the notebook's own default is no longer allowed."""
    if card.finetune_allow_list:
        return card.finetune_allow_list[0]
    raise ComputeError(
        f"{card.label} has no finetune_compute_allow_list tag (or it is empty), so there is no "
        f"safe default VM size; pass {_FINETUNE_OPTION} with a GPU size (not one of "
        f"{_listed(sorted(K80_DENY_LIST))})"
    )


def default_instance_type(card: ModelCard) -> str:
    """The first inference-allow-listed instance type."""
    if card.inference_allow_list:
        return card.inference_allow_list[0]
    raise ComputeError(
        f"{card.label} has no inference_compute_allow_list tag (or it is empty), so there is "
        f"no safe default instance type; pass {_INFERENCE_OPTION} with a GPU instance type"
    )


def choose_finetune_sku(card: ModelCard, sku: str | None) -> str:
    """The user's size if allowed, else the default: one call for every caller."""
    chosen = sku or default_finetune_sku(card)
    check_finetune_sku(card, chosen)
    return chosen


def choose_instance_type(card: ModelCard, instance_type: str | None) -> str:
    """The user's instance type if allowed, else the default."""
    chosen = instance_type or default_instance_type(card)
    check_inference_instance(card, chosen)
    return chosen
