"""Credentials and workspace discovery for the Azure backend: never a browser in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from azure_fake import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, azure_config, fake_azure

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_creating_the_backend_imports_no_sdk() -> None:
    code = ("import sys; from harness import config; from harness.backends.azure import "
            "AzureBackend; AzureBackend(config.resolve(cli={'backend': 'azure'}, env={}));"
            "heavy = [m for m in ('azure.ai.ml', 'azure.identity', 'mlflow') if m in sys.modules];"
            "assert not heavy, heavy")
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

    with pytest.raises(ConfigError,
                       match=rf"--interactive-login.*{variable} is set.*AZURE_CLIENT_ID"):
        make_credential(azure_config(interactive_login=True), env={variable: "true"})


def test_missing_workspace_settings_name_the_options_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # no config.json here or above
    config = azure_config(azure_subscription_id=None, azure_resource_group=None,
                          azure_workspace=None)
    with fake_azure(config) as (fake, backend), pytest.raises(ConfigError) as failure:
        backend.workspace  # noqa: B018 - the client is built on first use
    message = str(failure.value)
    for needed in ("--azure-subscription-id", "AZURE_SUBSCRIPTION_ID", "--azure-resource-group",
                   "AZURE_RESOURCE_GROUP", "--azure-workspace", "AZURE_ML_WORKSPACE",
                   "config.json"):
        assert needed in message
    assert fake.requests == []


def test_workspace_from_a_config_file(tmp_path: Path) -> None:
    from harness.errors import ConfigError

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"subscription_id": SUBSCRIPTION,
                                "resource_group": RESOURCE_GROUP, "workspace_name": WORKSPACE}))
    config = azure_config(azure_workspace=None, azure_config_file=str(path))
    with fake_azure(config) as (fake, backend):
        assert backend.workspace.workspace_name == WORKSPACE
        assert backend.list_owned_resources() == []
        assert fake.calls("endpoint.list") and not fake.unmatched
    missing = azure_config(azure_workspace=None, azure_config_file=str(tmp_path / "nope.json"))
    with fake_azure(missing) as (_, backend), pytest.raises(ConfigError, match="not a file"):
        backend.workspace  # noqa: B018


def test_unknown_model_version_is_a_config_error() -> None:
    from harness.errors import ConfigError

    with fake_azure() as (_, backend), pytest.raises(
            ConfigError, match=r"Phi-3-mini-4k-instruct \(version 99\) not found in registry "
                               r"azureml.*--model-version"):
        backend.get_foundation_model("Phi-3-mini-4k-instruct", "99")
