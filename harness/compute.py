"""Which VM sizes a model may be fine-tuned and served on, which exist, and their GPU count.

The registry's allow-lists are the authority on what a model supports, but they lag behind the
fleet: Phi-3-mini's inference list still starts with Standard_NC6s_v3, retired on 2025-09-30.
So a size must be allowed, not retired (``RETIRED_SIZES``, the one table of retired sizes) and
offered in the workspace's region (``list_sizes()``). Among those the default is the cheapest
that fits: the fewest GPUs, ties broken by list order. "First in list order" picked
Standard_ND40rs_v2 (eight V100s) for Phi-3-mini's inference; one A100 (Standard_NC24ads_A100_v4)
serves and fine-tunes a 4B-14B model with LoRA. Checks are case-insensitive because Azure reports
sizes in inconsistent case.

When the registry answers no allow-list (its recorded GET carries no system metadata), nothing
can be checked against one: the run stops unless the sizes are chosen explicitly
(``explicit_sizes``), and then every record of the run says so. This module is the one home of
the size rule: every route that picks a size (pipeline, FineTuning job, plan, check) calls
``choose_*``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from harness.errors import ComputeError
from harness.model_card import (
    FINETUNE_ALLOW_LIST,
    INFERENCE_ALLOW_LIST,
    ModelCard,
    allow_list_places,
)

_FINETUNE_OPTION = "--compute-sku"
_INFERENCE_OPTION = "--instance-type"


@dataclass(frozen=True)
class RetiredSize:
    """A VM size Azure no longer runs: VMs of it are deallocated, clusters cannot scale."""

    name: str
    retired_on: date
    source: str  # the retirement notice


_NC_K80 = "https://learn.microsoft.com/azure/virtual-machines/nc-series-retirement"
_NCV3 = "https://learn.microsoft.com/azure/virtual-machines/ncv3-retirement"
RETIRED_SIZES: tuple[RetiredSize, ...] = (
    # NC (v1), NVIDIA K80: retirement extended from 2022-08-31 to 2023-09-06
    *(
        RetiredSize(name, date(2023, 9, 6), _NC_K80)
        for name in ("Standard_NC6", "Standard_NC12", "Standard_NC24", "Standard_NC24r")
    ),
    # NCv3, NVIDIA V100: NC24rs_v3's earlier 2025-03-31 date was moved to the series' date
    *(
        RetiredSize(name, date(2025, 9, 30), _NCV3)
        for name in (
            "Standard_NC6s_v3",
            "Standard_NC12s_v3",
            "Standard_NC24s_v3",
            "Standard_NC24rs_v3",
        )
    ),
)
_RETIRED = {size.name.casefold(): size for size in RETIRED_SIZES}

# GPUs per VM, for choosing before the region's size list is known (``plan`` without
# --workspace-sizes); the region's own ``list_sizes()`` answer wins whenever it is given.
# Source: the Azure VM size pages (learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/
# nca100v4-series, ndasra100v4-series, ndma100v4-series, ndv2-series, ncv3-series,
# nch100v5-series, ndh100v5-series).
DOCUMENTED_GPUS: Mapping[str, int] = {
    name.casefold(): gpus
    for name, gpus in (
        ("Standard_NC24ads_A100_v4", 1),
        ("Standard_NC48ads_A100_v4", 2),
        ("Standard_NC96ads_A100_v4", 4),
        ("Standard_ND96asr_v4", 8),
        ("Standard_ND96amsr_A100_v4", 8),
        ("Standard_ND40rs_v2", 8),
        ("Standard_NC6s_v3", 1),
        ("Standard_NC12s_v3", 2),
        ("Standard_NC24s_v3", 4),
        ("Standard_NC24rs_v3", 4),
        ("Standard_NC40ads_H100_v5", 1),
        ("Standard_NC80adis_H100_v5", 2),
        ("Standard_ND96isr_H100_v5", 8),
    )
}
ALLOW_LISTS_UNKNOWN = "allow-lists unknown: sizes chosen explicitly"
_LIST_OPTION = {FINETUNE_ALLOW_LIST: _FINETUNE_OPTION, INFERENCE_ALLOW_LIST: _INFERENCE_OPTION}
_LIST_LABEL = {
    FINETUNE_ALLOW_LIST: "fine-tune allow-list",
    INFERENCE_ALLOW_LIST: "inference allow-list",
}


def _allow_list_of(card: ModelCard, name: str) -> tuple[str, ...] | None:
    return card.finetune_allow_list if name == FINETUNE_ALLOW_LIST else card.inference_allow_list


@dataclass(frozen=True)
class SizeChoice:
    """A chosen VM size and why it was chosen (``plan`` and ``check`` show the reason)."""

    name: str
    reason: str


def _today() -> date:
    return datetime.now(UTC).date()


def retirement(size: str, today: date | None = None) -> RetiredSize | None:
    """The retirement of ``size`` if it has happened by ``today``."""
    retired = _RETIRED.get(size.casefold())
    return retired if retired and retired.retired_on <= (today or _today()) else None


def _folded(values: Iterable[str]) -> set[str]:
    return {x.casefold() for x in values}


def _allowed(value: str, allow_list: Iterable[str]) -> bool:
    return value.casefold() in _folded(allow_list)


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values) or "(none)"


def usable(
    sizes: Iterable[str], offered: Collection[str] | None, today: date | None = None
) -> list[str]:
    """The sizes that are not retired and, when the region's list is known, offered."""
    region = None if offered is None else _folded(offered)
    return [
        s
        for s in sizes
        if retirement(s, today) is None and (region is None or s.casefold() in region)
    ]


def _why_not(size: str, offered: Collection[str] | None, today: date | None) -> str | None:
    """Why ``size`` cannot be used although a model may allow it, or None."""
    retired = retirement(size, today)
    if retired is not None:
        return f"{size} was retired on {retired.retired_on} ({retired.source})"
    if offered is not None and size.casefold() not in _folded(offered):
        return f"{size} is not offered in the workspace's region"
    return None


def _check(
    card: ModelCard,
    size: str,
    what: str,
    allow_list: Sequence[str] | None,
    option: str,
    offered: Collection[str] | None,
    today: date | None,
) -> None:
    use = "fine-tuning" if option == _FINETUNE_OPTION else "deploying"
    if allow_list is not None and not _allowed(size, allow_list):
        raise ComputeError(
            f"{what} {size} is not allowed for {use} {card.label}; allowed: "
            f"{_listed(allow_list)}; pass {option} with one of them"
        )
    reason = _why_not(size, offered, today)
    if reason is not None:
        alternatives = usable(allow_list or (), offered, today)
        hint = (
            f"allowed and usable: {_listed(alternatives)}; pass {option} with one of them"
            if allow_list is not None
            else f"pass {option} with another size"
        )
        raise ComputeError(f"{what} {size} cannot be used for {use} {card.label}: {reason}; {hint}")


def check_finetune_sku(
    card: ModelCard, sku: str, offered: Collection[str] | None = None, today: date | None = None
) -> None:
    """Refuse a size the model cannot be fine-tuned on, or that no longer exists or is not
    offered in the region (``offered=None``: region unknown), before any cluster exists."""
    _check(card, sku, "VM size", card.finetune_allow_list, _FINETUNE_OPTION, offered, today)


def check_inference_instance(
    card: ModelCard,
    instance_type: str,
    offered: Collection[str] | None = None,
    today: date | None = None,
) -> None:
    """Refuse an instance type the model cannot be served on (the seed only warned)."""
    _check(
        card,
        instance_type,
        "instance type",
        card.inference_allow_list,
        _INFERENCE_OPTION,
        offered,
        today,
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


def no_allow_lists(card: ModelCard, names: Sequence[str]) -> ComputeError:
    """The stop when the registry answered none of ``names``: where it looked, and the options
    that choose the sizes explicitly instead."""
    looked = "; ".join(f"{name}: {', '.join(allow_list_places(name))}" for name in names)
    options = " and ".join(_LIST_OPTION[name] for name in names)
    lists = "allow-lists" if len(names) > 1 else _LIST_LABEL[names[0]]
    return ComputeError(
        f"the registry returned no {lists} for {card.label} ({card.id}); looked in {looked}; "
        f"the run stops before creating anything: pass {options} to choose the sizes "
        "explicitly"
    )


def explicit_sizes(card: ModelCard, sku: str | None, instance_type: str | None) -> str | None:
    """None when the registry answered both allow-lists; the note every record of the run shows
    when it did not and the sizes were chosen explicitly; else the stop (``no_allow_lists``).
    Called before anything is created."""
    missing = card.missing_allow_lists()
    chosen = {FINETUNE_ALLOW_LIST: sku, INFERENCE_ALLOW_LIST: instance_type}
    unchosen = [name for name in missing if not chosen[name]]
    if unchosen:
        raise no_allow_lists(card, missing)
    if len(missing) == 2:
        return ALLOW_LISTS_UNKNOWN
    if missing:
        return f"{_LIST_LABEL[missing[0]]} unknown: {chosen[missing[0]]} chosen explicitly"
    return None


def gpu_count(size: str, gpus: Mapping[str, int] | None = None) -> int | None:
    """GPUs of ``size``: the region's answer when given, else the documented figure."""
    region = {k.casefold(): v for k, v in (gpus or {}).items()}
    return region.get(size.casefold(), DOCUMENTED_GPUS.get(size.casefold()))


def _cheapest(found: Sequence[str], gpus: Mapping[str, int] | None) -> SizeChoice:
    """Fewest GPUs first, ties by list order; a size of unknown GPU count goes last."""
    counts = {s: gpu_count(s, gpus) for s in found}
    best = min(found, key=lambda s: (counts[s] is None, counts[s] or 0, found.index(s)))
    shown = f"{counts[best]} GPU" if counts[best] is not None else "GPU count unknown"
    return SizeChoice(
        best,
        f"the allowed, not retired, offered size with the fewest GPUs ({shown}; ties: list "
        f"order) among {_listed(found)}",
    )


def _default(
    card: ModelCard,
    name: str,
    offered: Collection[str] | None,
    gpus: Mapping[str, int] | None,
    today: date | None,
) -> SizeChoice:
    allow_list = _allow_list_of(card, name)
    option = _LIST_OPTION[name]
    if allow_list is None:
        raise no_allow_lists(card, [name])
    if not allow_list:
        raise ComputeError(
            f"the {_LIST_LABEL[name]} of {card.label} is empty, so there is no safe "
            f"default; pass {option} with a GPU size"
        )
    found = usable(allow_list, offered, today)
    if found:
        return _cheapest(found, gpus)
    reasons = "; ".join(r for s in allow_list if (r := _why_not(s, offered, today)))
    raise ComputeError(
        f"no size allowed for {card.label} can be used: {reasons}; pass {option} with a size "
        "offered in the region, or use a workspace in a region that offers an allowed size"
    )


def _chosen(card: ModelCard, name: str, size: str) -> SizeChoice:
    if _allow_list_of(card, name) is None:
        return SizeChoice(size, f"chosen explicitly ({_LIST_OPTION[name]}); {ALLOW_LISTS_UNKNOWN}")
    return SizeChoice(size, f"chosen explicitly ({_LIST_OPTION[name]}), on the allow-list")


def _choose(
    card: ModelCard,
    name: str,
    size: str | None,
    offered: Collection[str] | None,
    today: date | None,
    gpus: Mapping[str, int] | None,
) -> SizeChoice:
    choice = (
        _default(card, name, offered, gpus, today) if size is None else _chosen(card, name, size)
    )
    check = check_finetune_sku if name == FINETUNE_ALLOW_LIST else check_inference_instance
    check(card, choice.name, offered, today)
    return choice


def choose_finetune(
    card: ModelCard,
    sku: str | None,
    offered: Collection[str] | None = None,
    today: date | None = None,
    gpus: Mapping[str, int] | None = None,
) -> SizeChoice:
    """The user's size if usable, else the cheapest usable allowed one, with the reason."""
    return _choose(card, FINETUNE_ALLOW_LIST, sku, offered, today, gpus)


def choose_inference(
    card: ModelCard,
    instance_type: str | None,
    offered: Collection[str] | None = None,
    today: date | None = None,
    gpus: Mapping[str, int] | None = None,
) -> SizeChoice:
    """The user's instance type if usable, else the cheapest usable allowed one."""
    return _choose(card, INFERENCE_ALLOW_LIST, instance_type, offered, today, gpus)


def default_finetune_sku(
    card: ModelCard,
    offered: Collection[str] | None = None,
    today: date | None = None,
    gpus: Mapping[str, int] | None = None,
) -> str:
    """The cheapest allow-listed size that is not retired and is offered in the region."""
    return _default(card, FINETUNE_ALLOW_LIST, offered, gpus, today).name


def default_instance_type(
    card: ModelCard,
    offered: Collection[str] | None = None,
    today: date | None = None,
    gpus: Mapping[str, int] | None = None,
) -> str:
    """The cheapest inference-allow-listed instance type that can be used."""
    return _default(card, INFERENCE_ALLOW_LIST, offered, gpus, today).name


def choose_finetune_sku(
    card: ModelCard,
    sku: str | None,
    offered: Collection[str] | None = None,
    today: date | None = None,
    gpus: Mapping[str, int] | None = None,
) -> str:
    """``choose_finetune``'s size alone: one call for every caller."""
    return choose_finetune(card, sku, offered, today, gpus).name


def choose_instance_type(
    card: ModelCard,
    instance_type: str | None,
    offered: Collection[str] | None = None,
    today: date | None = None,
    gpus: Mapping[str, int] | None = None,
) -> str:
    """``choose_inference``'s instance type alone."""
    return choose_inference(card, instance_type, offered, today, gpus).name
