"""The fine-tune cluster: reuse it by name, or create it (Dedicated, then LowPriority).

The seed's checks are kept and fixed: a Failed cluster is refused; the size must be allowed
for the model, not retired and offered in the region (``list_sizes()``, read once), checked
before anything is created; the GPU count comes from the same list. A cluster this run created
and then found unusable is deleted again at once. Creation that fails on quota fails
*asynchronously* (the PUT is accepted, the operation ends Failed), so both paths are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import is_quota, read_failed, service_message, status_text
from harness.compute import check_finetune_sku, choose_finetune_sku, gpus_for_sku
from harness.config import BY_NAME
from harness.errors import CleanupError, ComputeError
from harness.waiting import Deadline, Heartbeat, wait_poller

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Compute, VmSize
    from harness.model_card import ModelCard

# The service's tier names -> what AmlCompute accepts: tier="LowPriority" (the seed's spelling)
# is sent as "Lowpriority", so the SDK's snake_case values are used.
TIERS = {"Dedicated": "dedicated", "LowPriority": "low_priority"}
MAX_INSTANCES = 2
# Compute names are unique across all computes of an Azure region. The service's words for a
# name held by another workspace (microsoft/MCW-ML-Ops#28, "Compute with this name already
# exists. Compute name needs to be unique across all existing computes within an Azure region";
# and "Compute name 'x' is not available. Reason: AlreadyExists").
_NAME_TAKEN = re.compile(
    r"unique across all existing computes|Reason: AlreadyExists|"
    r"already in use",
    re.IGNORECASE,
)


def list_sizes(workspace: MLClient) -> list[VmSize]:
    """The VM sizes the workspace's region offers, with GPUs, vCPUs and quota family.

    azure-ai-ml 1.35's ``VmSize._from_rest_object`` copies ``as_dict()`` wire names, so the
    vCPU count sits in ``vCPUs`` and ``v_cp_us`` stays None: both are read."""
    from azure.core.exceptions import AzureError

    from harness.backends.base import VmSize

    try:
        found = list(workspace.compute.list_sizes())
    except AzureError as exc:
        raise read_failed(
            exc,
            "the VM sizes of its region",
            "the workspace",
            "check the workspace settings",
            ComputeError,
        ) from None
    return [
        VmSize(
            str(s.name),
            gpus=int(s.gpus or 0),
            vcpus=int(getattr(s, "vCPUs", None) or s.v_cp_us or 0),
            family=str(s.family or ""),
        )
        for s in found
    ]


def ensure_compute(
    workspace: MLClient,
    card: ModelCard,
    name: str,
    sku: str | None,
    tags: Mapping[str, str],
    timeout_s: float,
) -> Compute:
    """The usable cluster ``name``; ``created_by_harness`` only when this call created it."""
    sizes = list_sizes(workspace)
    found = existing(workspace, name)
    if found is not None:
        return _checked(card, found, sizes, created=False)
    offered = [size.name for size in sizes]
    gpus = {size.name: size.gpus for size in sizes}
    size = choose_finetune_sku(card, sku, offered, gpus=gpus)  # refused before any creation
    try:
        made = _create(workspace, name, size, tags, Deadline(timeout_s))
        return _checked(card, made, sizes, created=True)
    except ComputeError as exc:
        raise ComputeError(f"{exc}{_discard(workspace, name)}") from None


def existing(workspace: MLClient, name: str) -> Any:
    """The cluster ``name``, or None when the workspace has none of that name."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        return workspace.compute.get(name)
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise read_failed(
            exc,
            f"compute cluster {name}",
            "the workspace",
            "check the workspace settings",
            ComputeError,
        ) from None


def _create(
    workspace: MLClient, name: str, size: str, tags: Mapping[str, str], deadline: Deadline
) -> Any:
    """Dedicated first, LowPriority when that is refused (the seed's fallback)."""
    from azure.core.exceptions import HttpResponseError

    failures: list[str] = []
    for tier in TIERS:
        try:
            return _create_tier(workspace, name, size, tier, tags, deadline)
        except HttpResponseError as exc:
            said = service_message(exc)
            if _NAME_TAKEN.search(said):
                raise ComputeError(_name_taken(name, said)) from None
            failures.append(f"{tier}: {said}")
            _remove_failed(workspace, name, deadline)
    raise ComputeError(_creation_failed(name, size, failures))


def _create_tier(
    workspace: MLClient,
    name: str,
    size: str,
    tier: str,
    tags: Mapping[str, str],
    deadline: Deadline,
) -> Any:
    from azure.ai.ml.entities import AmlCompute

    cluster = AmlCompute(
        name=name, size=size, tier=TIERS[tier], max_instances=MAX_INSTANCES, tags=dict(tags)
    )
    poller = workspace.compute.begin_create_or_update(cluster)
    heartbeat = Heartbeat(f"compute cluster {name} ({size}, {tier}) creation", deadline)
    if not wait_poller(heartbeat, poller):
        raise ComputeError(
            f"compute cluster {name} ({size}, {tier}) was not created within "
            f"{deadline.seconds:.0f}s; raise {BY_NAME['compute_timeout_s'].cli} or retry later"
        )
    return poller.result()


def _remove_failed(workspace: MLClient, name: str, deadline: Deadline) -> None:
    """A failed creation may leave a Failed cluster behind; the next tier needs the name."""
    from azure.core.exceptions import AzureError

    if existing(workspace, name) is None:
        return
    try:
        wait_poller(
            Heartbeat(f"failed compute cluster {name} deletion", deadline),
            workspace.compute.begin_delete(name),
        )
    except AzureError as exc:
        raise ComputeError(
            f"compute cluster {name} failed to create and could not be "
            f"deleted for a retry: {service_message(exc)}"
        ) from None


def _name_taken(name: str, said: str) -> str:
    return (
        f"compute name {name} is taken by a compute elsewhere in the workspace's region "
        f"(Azure wants compute names unique across every workspace of a region): {said}; "
        f"pass {BY_NAME['compute_name'].cli} with another name"
    )


def _creation_failed(name: str, size: str, failures: list[str]) -> str:
    said = "; ".join(failures)
    if is_quota(said):
        return (
            f"compute cluster {name} ({size}) could not be created: the subscription's quota "
            f"for {size} in the workspace's region is exhausted ({said}); pass "
            f"{BY_NAME['compute_sku'].cli} with another allowed size, use a workspace in "
            "another region, or request a quota increase"
        )
    return (
        f"compute cluster {name} ({size}) could not be created in any tier ({said}); "
        f"pass {BY_NAME['compute_name'].cli} with an existing GPU cluster"
    )


def _checked(card: ModelCard, compute: Any, sizes: Sequence[VmSize], created: bool) -> Compute:
    """Provisioning state, allow-list, retirement, region and GPUs, as the seed checks them
    (fixed)."""
    from harness.backends.base import Compute

    name, size = str(compute.name), str(compute.size)
    state = status_text(compute.provisioning_state)
    if state.casefold() == "failed":
        raise ComputeError(
            f"compute cluster {name} is in provisioning state Failed "
            f"({compute.provisioning_errors or 'no error reported'}), expected Succeeded; "
            f"delete it or pass {BY_NAME['compute_name'].cli} with another cluster name"
        )
    check_finetune_sku(card, size)
    gpus = gpus_for_sku(size, [(s.name, s.gpus) for s in sizes])
    if gpus < 1:
        raise ComputeError(
            f"compute cluster {name} has VM size {size} with no GPU; fine-tuning needs GPUs; "
            f"pass {BY_NAME['compute_name'].cli} with a GPU cluster"
        )
    return Compute(
        name=name,
        sku=size,
        gpus_per_node=gpus,
        created_by_harness=created,
        provisioning_state=state,
    )


def _discard(workspace: MLClient, name: str) -> str:
    """Start deleting a cluster this run created but cannot use; say what happened."""
    from azure.core.exceptions import AzureError

    if existing(workspace, name) is None:
        return ""
    try:
        workspace.compute.begin_delete(name)
    except AzureError as exc:
        return (
            f"; deleting cluster {name} failed too ({service_message(exc)}); it carries "
            "the ownership tags: run `python -m harness sweep`"
        )
    return f"; the cluster {name} this run created is being deleted"


def delete_compute(workspace: MLClient, name: str, timeout_s: float) -> None:
    """Delete a cluster, waiting up to ``timeout_s``; a slow deletion goes on by itself."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        poller = workspace.compute.begin_delete(name)
        wait_poller(Heartbeat(f"compute cluster {name} deletion", Deadline(timeout_s)), poller)
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise CleanupError(
            f"compute cluster {name} could not be deleted: {service_message(exc)}; it keeps "
            "its ownership tags: delete it in the studio or run `python -m harness sweep`"
        ) from None
