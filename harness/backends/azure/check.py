"""``python -m harness check --backend azure``: would a nightly run start on this workspace?

Read-only by construction: only GETs (and the registry's discovery) through the same clients
the run uses. It resolves the model (allow-lists and where they came from, deprecation), reads
the VM sizes the region offers and picks the fine-tune size and instance type the run would
pick, compares the core quota left for their VM families with what one node of each needs, counts
the endpoints against the documented limit, and reads the cluster the run would reuse. Each
finding is ``ok``, ``warn`` or ``FAIL``; any FAIL means the nightly run would fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import compute, model_card, naming
from harness.backends.azure import compute as azure_compute
from harness.backends.azure import jobs
from harness.backends.azure.clients import read_failed, service_message, status_text
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.backends.azure import AzureBackend
    from harness.backends.base import VmSize
    from harness.model_card import ModelCard

OK, WARN, FAIL = "ok", "warn", "FAIL"
# Azure ML docs, "Manage and increase quotas" (how-to-manage-quotas), online endpoints: "Number
# of endpoints per subscription: 50", per region, raisable on request.
DOCUMENTED_ENDPOINT_LIMIT = 50
_NOT_WORD = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN or FAIL
    topic: str
    text: str

    def line(self) -> str:
        return f"{self.level:<4} {self.topic}: {self.text}"


@dataclass
class Check:
    backend: AzureBackend
    endpoint_limit: int = DOCUMENTED_ENDPOINT_LIMIT
    sizes_unknown: bool = False  # no allow-list and no explicit size: nothing to choose from

    def run(self) -> list[Finding]:
        found: list[Finding] = []
        card = self._step(found, "model", self._model)
        sizes = self._step(found, "workspace", self._sizes)
        self._step(found, "pipeline", self._component)
        if card is not None and sizes is not None and not self.sizes_unknown:
            chosen = self._step(found, "sizes", lambda out: self._choices(out, card, sizes))
            if chosen is not None:
                self._step(found, "quota", lambda out: self._quota(out, sizes, chosen))
            self._step(found, "cluster", lambda out: self._cluster(out, card, sizes))
        self._step(found, "endpoints", self._endpoints)
        return found

    def _step(self, found: list[Finding], topic: str, step: Callable[[list[Finding]], Any]) -> Any:
        """Run one step; a HarnessError becomes its FAIL finding (the others still run)."""
        try:
            return step(found)
        except HarnessError as exc:
            found.append(Finding(FAIL, topic, str(exc)))
            return None

    def _model(self, found: list[Finding]) -> ModelCard:
        config = self.backend.config
        card = self.backend.get_foundation_model(config.model_name, config.model_version)
        found.append(
            Finding(
                OK,
                "model",
                f"{card.label} ({card.id}) in registry {config.azure_model_registry}; task "
                f"{card.task} from {card.task_source}",
            )
        )
        self._allow_lists(found, card)
        found.append(Finding(OK, "deprecation", card.deprecation.describe()))
        try:
            notice = model_card.retirement_notice(card, config.strict_deprecation)
        except HarnessError as exc:
            found.append(Finding(FAIL, "deprecation", str(exc)))
        else:
            if notice:
                found.append(Finding(WARN, "deprecation", notice))
        return card

    def _allow_lists(self, found: list[Finding], card: ModelCard) -> None:
        """Where each list was looked for and what answered; FAIL when none did and the sizes
        are not chosen explicitly (the run would stop there)."""
        config = self.backend.config
        for name, values, source in (
            (
                model_card.FINETUNE_ALLOW_LIST,
                card.finetune_allow_list,
                card.finetune_allow_list_source,
            ),
            (
                model_card.INFERENCE_ALLOW_LIST,
                card.inference_allow_list,
                card.inference_allow_list_source,
            ),
        ):
            looked = ", ".join(model_card.allow_list_places(name))
            text = f"from {source}: {_names(values or ())}" if source else "no place answered"
            found.append(
                Finding(
                    OK if source else WARN, "allow-lists", f"{name} {text} (looked in {looked})"
                )
            )
        try:
            explicit = compute.explicit_sizes(card, config.compute_sku, config.instance_type)
        except HarnessError as exc:
            found.append(Finding(FAIL, "allow-lists", str(exc)))
            self.sizes_unknown = True
            return
        if explicit:
            found.append(Finding(WARN, "allow-lists", explicit))

    def _sizes(self, found: list[Finding]) -> list[VmSize]:
        from azure.core.exceptions import AzureError

        workspace, name = self.backend.workspace, self.backend.config.azure_workspace
        try:
            location = workspace.workspaces.get(workspace.workspace_name).location
        except AzureError as exc:
            raise read_failed(
                exc, "the workspace", f"workspace {name}", "check the workspace settings"
            ) from None
        sizes = self.backend.list_vm_sizes()
        found.append(
            Finding(
                OK,
                "workspace",
                f"{workspace.workspace_name} in {location} "
                f"is readable; the region offers {len(sizes)} VM sizes",
            )
        )
        return list(sizes)

    def _component(self, found: list[Finding]) -> None:
        registry = self.backend.config.azure_component_registry
        component = jobs.get_component(self.backend.clients.component_registry, registry)
        found.append(
            Finding(
                OK,
                "pipeline",
                f"{jobs.COMPONENT} {component.version} (label latest) resolves in registry "
                f"{registry}",
            )
        )

    def _choices(
        self, found: list[Finding], card: ModelCard, sizes: Sequence[VmSize]
    ) -> tuple[VmSize, VmSize]:
        config = self.backend.config
        offered = [size.name for size in sizes]
        gpus = {size.name: size.gpus for size in sizes}
        picked = (
            compute.choose_finetune(card, config.compute_sku, offered, gpus=gpus),
            compute.choose_inference(card, config.instance_type, offered, gpus=gpus),
        )
        finetune, inference = (choice.name for choice in picked)
        found.append(
            Finding(
                OK,
                "region",
                "allowed sizes the region offers (retired ones left "
                "out): fine-tuning "
                + _names(compute.usable(card.finetune_allow_list or (), offered))
                + "; inference "
                + _names(compute.usable(card.inference_allow_list or (), offered)),
            )
        )
        by_name = {size.name.casefold(): size for size in sizes}
        chosen = by_name[finetune.casefold()], by_name[inference.casefold()]
        found.append(
            Finding(
                OK,
                "sizes",
                "; ".join(
                    f"{what} {s.name} ({s.gpus} GPU, {s.vcpus} vCPUs, {s.family}): {c.reason}"
                    for what, s, c in zip(("fine-tune", "inference"), chosen, picked, strict=True)
                ),
            )
        )
        return chosen

    def _quota(
        self, found: list[Finding], sizes: Sequence[VmSize], chosen: tuple[VmSize, VmSize]
    ) -> None:
        usage = _family_usage(self.backend)
        needed: dict[str, int] = {}
        for size in chosen:  # one fine-tune node and one inference instance
            needed[size.family] = needed.get(size.family, 0) + size.vcpus
        for family, vcpus in needed.items():
            if family_key(family) not in usage:
                found.append(
                    Finding(
                        WARN,
                        "quota",
                        f"the region reports no dedicated vCPU "
                        f"quota for {family}; check it in the studio",
                    )
                )
                continue
            current, limit = usage[family_key(family)]
            free = limit - current
            text = (
                f"{family}: {free} of {limit} dedicated vCPUs free, {vcpus} needed "
                "(one fine-tune node and one inference instance)"
            )
            level = OK if free >= vcpus else FAIL
            hint = (
                ""
                if level == OK
                else (
                    "; request a quota increase, pass --compute-sku / "
                    "--instance-type with sizes of another family, or "
                    "free cores in use"
                )
            )
            found.append(Finding(level, "quota", text + hint))

    def _cluster(self, found: list[Finding], card: ModelCard, sizes: Sequence[VmSize]) -> None:
        name = self.backend.config.compute_name
        cluster = azure_compute.existing(self.backend.workspace, name)
        if cluster is None:
            found.append(
                Finding(
                    OK,
                    "cluster",
                    f"{name} does not exist; the run creates it "
                    "(the name must also be free in the whole region)",
                )
            )
            return
        size, state = str(cluster.size), status_text(cluster.provisioning_state)
        compute.check_finetune_sku(card, size, [s.name for s in sizes])
        if state.casefold() == "failed":
            found.append(
                Finding(
                    FAIL,
                    "cluster",
                    f"{name} ({size}) is in state Failed: delete "
                    "it or pass --compute-name with another name",
                )
            )
        else:
            found.append(
                Finding(OK, "cluster", f"{name} exists ({size}, {state}); the run reuses it")
            )

    def _endpoints(self, found: list[Finding]) -> None:
        from azure.core.exceptions import AzureError

        try:
            listed = list(self.backend.workspace.online_endpoints.list())
        except AzureError as exc:
            raise HarnessError(
                f"cannot list the workspace's endpoints: {service_message(exc)}"
            ) from None
        owned = [e for e in listed if naming.is_owned(dict(e.tags or {}))]
        expired = [e for e in owned if naming.is_expired(dict(e.tags or {}))]
        room = self.endpoint_limit - len(listed)
        text = (
            f"{len(listed)} endpoints in this workspace ({len(owned)} the harness's, "
            f"{len(expired)} expired), limit {self.endpoint_limit} per subscription and "
            "region (endpoints of other workspaces count too)"
        )
        if room < 1:
            found.append(
                Finding(
                    FAIL,
                    "endpoints",
                    text + "; a run needs one more: run "
                    "`python -m harness sweep` or delete endpoints",
                )
            )
        else:
            level = WARN if expired else OK
            found.append(
                Finding(
                    level,
                    "endpoints",
                    text
                    + ("; `python -m harness sweep` deletes the expired ones" if expired else ""),
                )
            )


def _names(sizes: Sequence[str]) -> str:
    return ", ".join(sizes) or "(none)"


def _family_usage(backend: AzureBackend) -> dict[str, tuple[int, int]]:
    """Per VM family: (vCPUs in use, limit) of the region's dedicated cluster quota.

    ``list_usage`` names a family's entry "Standard <X> Family Cluster Dedicated vCPUs" for the
    size family ``standard<X>Family`` (rest-api-specs Usage/list.json). azure-ai-ml 1.35's
    ``Usage._from_rest_object`` copies ``as_dict()`` wire names, so ``current_value`` stays None
    and the number sits in ``currentValue``: both are read.
    """
    from azure.core.exceptions import AzureError

    try:
        entries = list(backend.workspace.compute.list_usage())
    except AzureError as exc:
        raise read_failed(
            exc, "the region's core usage", "the subscription", "check the subscription settings"
        ) from None
    usage: dict[str, tuple[int, int]] = {}
    for entry in entries:
        if "vmfamily" not in str(entry.type or "").casefold():
            continue  # the totals, and the same family again per workspace and cluster
        name = (
            entry.name.get("value", "")
            if isinstance(entry.name, dict)
            else str(getattr(entry.name, "value", "") or "")
        )
        key = _NOT_WORD.sub("", name.casefold())
        if not key.endswith("familyclusterdedicatedvcpus"):
            continue
        family = key.removesuffix("clusterdedicatedvcpus")
        current = getattr(entry, "currentValue", None)
        if current is None:
            current = entry.current_value
        usage[family] = (int(current or 0), int(entry.limit or 0))
    return usage


def family_key(family: str) -> str:
    """``standardNCADSA100v4Family`` -> the key ``_family_usage`` files it under."""
    return _NOT_WORD.sub("", family.casefold())


def run(backend: AzureBackend, endpoint_limit: int = DOCUMENTED_ENDPOINT_LIMIT) -> list[Finding]:
    return Check(backend, endpoint_limit).run()
