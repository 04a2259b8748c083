"""Credentials and workspace discovery for the Azure backend: never a browser in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.azure_fake import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    AzureRig,
    azure_config,
    fake_azure,
)

ROOT = Path(__file__).resolve().parents[2]


def test_creating_the_backend_imports_no_sdk() -> None:
    code = (
        "import sys; from harness import config; from harness.backends.azure import "
        "AzureBackend; AzureBackend(config.resolve(cli={'backend': 'azure'}, env={}));"
        "heavy = [m for m in ('azure.ai.ml', 'azure.identity', 'mlflow') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_default_credential_never_opens_a_browser() -> None:
    from azure.identity import DefaultAzureCredential

    from harness.backends.azure.clients import make_credential

    credential = make_credential(azure_config(), env={})
    assert isinstance(credential, DefaultAzureCredential)
    names = [type(c).__name__ for c in credential.credentials]
    assert "InteractiveBrowserCredential" not in names


def test_browser_login_only_when_asked_and_after_the_default_chain() -> None:
    from azure.identity import DefaultAzureCredential, InteractiveBrowserCredential

    from harness.backends.azure.clients import make_credential

    credential: Any = make_credential(azure_config(interactive_login=True), env={})
    first, last = credential.credentials
    assert isinstance(first, DefaultAzureCredential)
    assert isinstance(last, InteractiveBrowserCredential)


@pytest.mark.parametrize("variable", ["CI", "TF_BUILD", "GITHUB_ACTIONS"])
def test_browser_login_is_refused_in_ci(variable: str) -> None:
    from harness.backends.azure.clients import make_credential
    from harness.errors import ConfigError

    with pytest.raises(
        ConfigError, match=rf"--interactive-login.*{variable} is set.*AZURE_CLIENT_ID"
    ):
        make_credential(azure_config(interactive_login=True), env={variable: "true"})


def test_missing_workspace_settings_name_the_options_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # no config.json here or above
    config = azure_config(
        azure_subscription_id=None, azure_resource_group=None, azure_workspace=None
    )
    with fake_azure(config) as rig, pytest.raises(ConfigError) as failure:
        rig.backend.workspace  # noqa: B018 - the client is built on first use
    message = str(failure.value)
    for needed in (
        "--azure-subscription-id",
        "AZURE_SUBSCRIPTION_ID",
        "--azure-resource-group",
        "AZURE_RESOURCE_GROUP",
        "--azure-workspace",
        "AZURE_ML_WORKSPACE",
        "config.json",
    ):
        assert needed in message
    assert rig.fake.requests == []


def test_workspace_from_a_config_file(tmp_path: Path) -> None:
    from harness.errors import ConfigError

    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "subscription_id": SUBSCRIPTION,
                "resource_group": RESOURCE_GROUP,
                "workspace_name": WORKSPACE,
            }
        )
    )
    config = azure_config(azure_workspace=None, azure_config_file=str(path))
    with fake_azure(config) as rig:
        assert rig.backend.workspace.workspace_name == WORKSPACE
        assert rig.backend.list_owned_resources() == []
        assert rig.fake.calls("endpoint.list")
        rig.fake.check()
    missing = azure_config(azure_workspace=None, azure_config_file=str(tmp_path / "nope.json"))
    with fake_azure(missing) as rig, pytest.raises(ConfigError, match="not a file"):
        rig.backend.workspace  # noqa: B018


def test_a_registry_that_cannot_be_discovered_says_what_the_service_said(azure: AzureRig) -> None:
    from harness.errors import HarnessError

    azure.fake.router.inject(
        "registry.discovery",
        404,
        body={"error": {"code": "NotFound", "message": "registry nosuch not found"}},
    )
    with pytest.raises(HarnessError) as failure:
        azure.backend.get_foundation_model("Phi-4", "8")
    message = str(failure.value)
    assert "where the registry lives (discovery)" in message and "HTTP 404" in message
    assert "credential" not in message


def test_the_experimental_check_answers_as_the_sdks_own_without_reading_sources(
    azure: AzureRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    from azure.ai.ml._utils import _experimental

    def sdk_rule() -> bool:  # azure-ai-ml 1.x _experimental.py _should_skip_warning
        return any(frame.function == "_from_rest_object" for frame in inspect.stack())

    monkeypatch.setattr(_experimental, "_should_skip_warning", sdk_rule)
    assert azure.backend.clients.workspace is not None  # building a client installs the walk
    walk: Callable[[], bool] = _experimental._should_skip_warning
    assert walk is not sdk_rule

    def _from_rest_object() -> tuple[bool, bool]:
        return walk(), sdk_rule()

    def elsewhere() -> tuple[bool, bool]:
        return walk(), sdk_rule()

    assert _from_rest_object() == (True, True)
    assert elsewhere() == (False, False)
    monkeypatch.setattr(inspect, "stack", lambda *a: pytest.fail("the walk read the stack"))
    assert walk() is False
