"""Where a model can be fine-tuned serverless and deployed as a serverless endpoint: one table.

Source: the "Current support matrix for FT deployments" of azureml-examples
``sdk/python/jobs/finetuning/standalone/model-as-a-service/chat-completion/
chat_completion_with_model_as_service.ipynb`` (2026), the serverless fine-tuning sample the
Foundry docs (``articles/ai-foundry/how-to/fine-tune-serverless.md``, 2026-01-28) link to. The
notebook also reads a model's ``maas-finetuning-deploy-regions`` tag; where the card carries it,
that live answer wins over this table. Regions are Azure's lower-case location names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

SOURCE = (
    "azureml-examples sdk/python/jobs/finetuning/standalone/model-as-a-service/"
    "chat-completion/chat_completion_with_model_as_service.ipynb (support matrix)"
)
REGIONS_TAG = "maas-finetuning-deploy-regions"
_EAST_WEST = ("eastus2", "eastus", "northcentralus", "westus3", "westus", "southcentralus")
SERVERLESS_REGIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Mistral-3B": _EAST_WEST,
        "Mistral-Nemo": _EAST_WEST,
        "Mistral-Large-2411": _EAST_WEST,
        "tsuzumi-7b": _EAST_WEST,
        "Phi-4-mini-instruct": _EAST_WEST,
        "Phi-3.5-mini-instruct": _EAST_WEST,
        "Phi-3.5-MoE-instruct": _EAST_WEST,
        "Phi-3-mini-4k-instruct": ("eastus2",),
        "Phi-3-mini-128k-instruct": ("eastus2",),
        "Phi-3-medium-4k-instruct": ("eastus2",),
        "Phi-3-medium-128k-instruct": ("eastus2", "swedencentral"),
        "Meta-Llama-3.1-8B-Instruct": ("westus3",),
        "Meta-Llama-3.1-70B-Instruct": ("westus3",),
        "Llama-2-7b": ("westus3",),
        "Llama-2-13b": ("westus3",),
        "Llama-2-70b": ("westus3",),
    }
)
_BY_FOLDED = {name.casefold(): regions for name, regions in SERVERLESS_REGIONS.items()}


@dataclass(frozen=True)
class RegionAnswer:
    """Whether ``region`` can fine-tune ``model`` serverless, and on whose word."""

    model: str
    region: str | None
    regions: tuple[str, ...] | None  # None: the model is in no list
    source: str

    @property
    def known(self) -> bool:
        return self.regions is not None

    @property
    def supported(self) -> bool:
        return (self.region or "").casefold() in (self.regions or ())

    def describe(self) -> str:
        if self.regions is None:
            return f"{self.model} is not in the serverless fine-tuning table ({self.source})"
        where = f"region {self.region}" if self.region else "the workspace's region (unknown)"
        verdict = "supports" if self.supported else "does not support"
        return (
            f"{where} {verdict} serverless fine-tuning of {self.model} (regions: "
            f"{', '.join(self.regions)}; {self.source})"
        )


def serverless_regions(
    model: str, region: str | None, tags: Mapping[str, str] | None = None
) -> RegionAnswer:
    """The model's serverless regions: its own tag first, else the table."""
    tagged = (tags or {}).get(REGIONS_TAG)
    if tagged:
        parts = tagged.replace(";", ",").split(",")
        found = tuple(part.strip().casefold() for part in parts if part.strip())
        return RegionAnswer(model, region, found, f"the model's {REGIONS_TAG} tag")
    return RegionAnswer(model, region, _BY_FOLDED.get(model.casefold()), SOURCE)
