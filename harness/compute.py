"""Which VM sizes a model may be fine-tuned and served on, which exist, and their GPU count.

The registry's allow-lists are the authority on what a model supports, but they lag behind the
fleet: Phi-3-mini's inference list still starts with Standard_NC6s_v3, retired on 2025-09-30.
So a size must be allowed, not retired (``RETIRED_SIZES``, the one table of retired sizes) and
offered in the workspace's region (``list_sizes()``); the default is the first allow-listed size
that is all three. Checks are case-insensitive because Azure reports sizes in inconsistent case.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from harness.errors import ComputeError
from harness.model_card import ModelCard

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


def _today() -> date:
    return datetime.now(timezone.utc).date()


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


def _first_usable(
    card: ModelCard,
    allow_list: Sequence[str] | None,
    tag: str,
    option: str,
    offered: Collection[str] | None,
    today: date | None,
) -> str:
    if not allow_list:
        raise ComputeError(
            f"{card.label} has no {tag} (system metadata or tag), or it is empty, so there is "
            f"no safe default; pass {option} with a GPU size"
        )
    found = usable(allow_list, offered, today)
    if found:
        return found[0]
    reasons = "; ".join(r for s in allow_list if (r := _why_not(s, offered, today)))
    raise ComputeError(
        f"no size allowed for {card.label} can be used: {reasons}; pass {option} with a size "
        "offered in the region, or use a workspace in a region that offers an allowed size"
    )


def default_finetune_sku(
    card: ModelCard, offered: Collection[str] | None = None, today: date | None = None
) -> str:
    """The first allow-listed size that is not retired and is offered in the region."""
    return _first_usable(
        card,
        card.finetune_allow_list,
        "fine-tune compute allow-list",
        _FINETUNE_OPTION,
        offered,
        today,
    )


def default_instance_type(
    card: ModelCard, offered: Collection[str] | None = None, today: date | None = None
) -> str:
    """The first inference-allow-listed instance type that can be used."""
    return _first_usable(
        card,
        card.inference_allow_list,
        "inference compute allow-list",
        _INFERENCE_OPTION,
        offered,
        today,
    )


def choose_finetune_sku(
    card: ModelCard,
    sku: str | None,
    offered: Collection[str] | None = None,
    today: date | None = None,
) -> str:
    """The user's size if usable, else the default: one call for every caller."""
    chosen = sku or default_finetune_sku(card, offered, today)
    check_finetune_sku(card, chosen, offered, today)
    return chosen


def choose_instance_type(
    card: ModelCard,
    instance_type: str | None,
    offered: Collection[str] | None = None,
    today: date | None = None,
) -> str:
    """The user's instance type if usable, else the default."""
    chosen = instance_type or default_instance_type(card, offered, today)
    check_inference_instance(card, chosen, offered, today)
    return chosen
