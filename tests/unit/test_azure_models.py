"""The foundation model from today's registry: system metadata as objects and as JSON text, an
archived model whose ``latest`` resolves to nothing, an old tag-form model, refusals that blame
access only when the service said 401/403, and lineage as the service reports it."""

from __future__ import annotations

from datetime import date

import pytest

from tests.support.azure_fake import AzureRig, fake_azure

PHI3 = "Phi-3-mini-4k-instruct"
CREATING = ("PUT", "POST", "PATCH", "DELETE")


def test_a_current_model_reads_its_system_metadata_objects(azure: AzureRig) -> None:
    card = azure.backend.get_foundation_model("Phi-4", "latest")
    assert card.label == "Phi-4:8" and not card.deprecation.archived
    assert card.finetune_allow_list and card.finetune_allow_list[-1] == "Standard_ND96isr_H100_v5"
    assert (
        card.finetune_allow_list_source == card.inference_allow_list_source == ("system_metadata")
    )
    assert (card.task, card.task_source) == ("chat-completion", "system_metadata")
    assert card.model_specific_defaults["deepspeed_stage"] == 3  # tags keep the defaults


def test_a_pinned_version_migrated_in_place_reads_json_text(azure: AzureRig) -> None:
    card = azure.backend.get_foundation_model(PHI3, "15")
    raw = azure.fake.registry.models[1].system_metadata or {}
    assert isinstance(raw["supportedComputes"], str), "the fake serves JSON text here"
    assert card.inference_allow_list and card.inference_allow_list[0] == "Standard_NC6s_v3"
    assert card.finetune_allow_list_source == "system_metadata"
    assert card.deprecation.archived
    assert card.deprecation.finetune_retirement == date(2025, 8, 30)
    assert [c.method for c in azure.fake.requests if c.method in CREATING] == []


def test_latest_of_an_archived_model_says_so_and_names_the_versions(azure: AzureRig) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError) as failure:
        azure.backend.get_foundation_model(PHI3, "latest")
    message = str(failure.value)
    assert "may be archived" in message and "credential" not in message
    assert "versions the registry returns: 15 (archived), 14 (archived)" in message
    assert "--model-version 15" in message
    listings = azure.fake.calls("registry.model.versions")
    assert [c.query.get("listViewType") for c in listings] == [None, ["All"]]


def test_an_old_tag_form_model_still_works(azure: AzureRig) -> None:
    card = azure.backend.get_foundation_model("Llama-2-7b-chat", "latest")
    assert card.finetune_allow_list_source == card.inference_allow_list_source == "tags"
    assert card.inference_allow_list and card.inference_allow_list[0] == "Standard_NC12s_v3"
    assert card.deprecation.source == "tags"
    assert card.deprecation.finetune_retirement == date(2025, 6, 30)


def test_an_unknown_version_lists_the_ones_there_are(azure: AzureRig) -> None:
    from harness.errors import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"Phi-4 version 99 not found in registry azureml; "
        r"versions the registry returns: 8, 7",
    ):
        azure.backend.get_foundation_model("Phi-4", "99")
    with pytest.raises(ConfigError, match=r"no such model or no visible version: registry"):
        azure.backend.get_foundation_model("Nope", "1")


@pytest.mark.parametrize("status", [401, 403])
def test_access_is_blamed_when_the_service_says_so(azure: AzureRig, status: int) -> None:
    from harness.errors import HarnessError

    azure.fake.router.inject(
        "registry.model",
        status,
        body={
            "error": {
                "code": "AuthorizationFailed",
                "message": "no read permission on the registry",
            }
        },
    )
    with pytest.raises(HarnessError) as failure:
        azure.backend.get_foundation_model("Phi-4", "8")
    message = str(failure.value)
    assert f"refused to show model Phi-4 version 8 to this credential (HTTP {status}" in message
    assert "no read permission" in message and "read access" in message


def test_other_failures_never_blame_the_credential() -> None:
    from harness.errors import HarnessError

    with fake_azure(retry_total=0) as rig:
        rig.fake.router.inject(
            "registry.model",
            503,
            body={"error": {"code": "ServiceUnavailable", "message": "registry busy"}},
        )
        with pytest.raises(HarnessError) as failure:
            rig.backend.get_foundation_model("Phi-4", "8")
    message = str(failure.value)
    assert "HTTP 503" in message and "registry busy" in message
    assert "credential" not in message and "access" not in message


def test_the_sdks_model_entity_drops_system_metadata(azure: AzureRig) -> None:
    """Why the harness reads the raw resource: azure-ai-ml's Model has no system metadata."""
    model = azure.backend.clients.model_registry.models.get("Phi-4", version="8")
    assert getattr(model, "_system_metadata", None) is None
    assert "finetune_compute_allow_list" not in (model.tags or {})


@pytest.mark.parametrize("lineage", ["jobName", "path"])
def test_lineage_is_what_the_service_reports(azure: AzureRig, lineage: str) -> None:
    from harness.backends.base import JobRun

    azure.fake.workspace.model_lineage = lineage
    card = azure.backend.get_foundation_model("Phi-4", "8")
    job = JobRun("brave_job_1", "display", "Completed", "url")
    model = azure.backend.register_model(card, job, {})
    stored = azure.fake.workspace.models[(model.name, model.version)]["properties"]
    assert model.job_name == "brave_job_1"
    if lineage == "path":  # no jobName: the job is read from the artifact store path
        assert "jobName" not in stored and "dcid.brave_job_1" in stored["modelUri"]


def test_the_versions_listing_reads_archive_state_and_dates_from_the_raw_resource(
    azure: AzureRig,
) -> None:
    versions = azure.backend.list_model_versions(PHI3)
    assert [(v.version, v.archived) for v in versions] == [("15", True), ("14", True)]
    assert versions[0].deprecation["finetune_retirement"] == "2025-08-30"
    (llama,) = azure.backend.list_model_versions("Llama-2-7b-chat")
    assert llama.deprecation["finetune_retirement"] == "2025-06-30" and not llama.archived


def test_versions_come_from_ids_in_the_recorded_resource_shape(azure: AzureRig) -> None:
    """As recorded, ``name`` is the model's name and ``type`` is ``models``: the version is
    only in ``id``; reading it from ``name`` would show "Phi-4" as every version."""
    (body,) = azure.fake.registry._in("azureml", "Phi-4")[-1:]
    shape = azure.fake.registry.model_body(body)
    assert (shape["name"], shape["type"]) == ("Phi-4", "models")
    assert [v.version for v in azure.backend.list_model_versions("Phi-4")] == ["8", "7"]


def test_an_unknown_name_has_no_visible_version_in_a_registry_or_a_workspace(
    azure: AzureRig,
) -> None:
    from harness.backends.azure import models
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^no such model or no visible version: registry"):
        azure.backend.list_model_versions("Nope")
    assert azure.fake.calls("registry.model.versions"), "the registry answered an empty page"
    with pytest.raises(ConfigError, match=r"^no such model or no visible version: workspace"):
        models.list_versions(azure.backend.workspace, "workspace ws-harness", "Nope")
    assert azure.fake.calls("model.versions"), "the workspace answered 404"


def test_the_recorded_get_without_system_metadata_leaves_the_lists_unknown() -> None:
    with fake_azure(metadata_key=None) as rig:
        card = rig.backend.get_foundation_model("Phi-4", "8")
    assert card.finetune_allow_list is None and card.inference_allow_list is None
    assert card.missing_allow_lists() == (
        "finetune_compute_allow_list",
        "inference_compute_allow_list",
    )
    assert "finetune_compute_allow_list not found (looked in" in card.allow_lists_found()
    assert card.model_specific_defaults["deepspeed_stage"] == 3, "tags still answer"


def test_the_camel_case_wire_key_is_read_and_named() -> None:
    with fake_azure(metadata_key="systemMetadata") as rig:
        card = rig.backend.get_foundation_model("Phi-4", "8")
    assert card.finetune_allow_list_source == card.task_source == "systemMetadata"
    assert card.finetune_allow_list and card.finetune_allow_list[0] == "Standard_NC24ads_A100_v4"


def test_a_model_in_a_second_registry_with_the_component_from_azureml() -> None:
    from tests.support.azure_fake import azure_config

    config = azure_config(
        model_name="Meta-Llama-3.1-8B-Instruct", azure_model_registry="azureml-meta"
    )
    with fake_azure(config) as rig:
        card = rig.backend.get_foundation_model(config.model_name, "latest")
        inputs = rig.backend.component_inputs()
        urls = [c.url for c in rig.fake.requests if "/registries/" in c.url]
    assert (
        card.id == "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/versions/4"
    )
    assert card.finetune_allow_list_source == "system_metadata"
    assert "compute_finetune" in inputs
    assert any("/registries/azureml-meta/models/" in u for u in urls)
    assert any("/registries/azureml/components/chat_completion_pipeline" in u for u in urls)
    assert not any("/registries/azureml/models/" in u for u in urls)
