"""Credentials and the two MLClients (workspace, registry), built on first use, and how the
service's answers read (its own error words, its states as text).

The seed falls back to a browser login whenever DefaultAzureCredential fails: in CI that hangs
or fails late, so the browser is only ever offered when the user asked for it, and never under
CI. Building a client is deferred because the registry client calls the discovery service in
its constructor: creating the backend must stay cheap and offline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from functools import cached_property
from types import FrameType
from typing import TYPE_CHECKING, Any

from harness.config import BY_NAME
from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import AzureError

    from harness.config import HarnessConfig

ARM_SCOPE = "https://management.azure.com/.default"
CI_VARIABLES = ("CI", "TF_BUILD", "GITHUB_ACTIONS")
WORKSPACE_OPTIONS = ("azure_subscription_id", "azure_resource_group", "azure_workspace")


def make_credential(config: HarnessConfig, env: Mapping[str, str] | None = None) -> TokenCredential:
    """DefaultAzureCredential; a browser login only when asked for, and never in CI."""
    from azure.identity import (
        ChainedTokenCredential,
        DefaultAzureCredential,
        InteractiveBrowserCredential,
    )

    env = os.environ if env is None else env
    default = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    if not config.interactive_login:
        return default
    ci = [name for name in CI_VARIABLES if env.get(name)]
    if ci:
        raise ConfigError(
            f"{BY_NAME['interactive_login'].cli} opens a browser, which cannot work in CI "
            f"({', '.join(ci)} is set); drop the option and give the CI job a service "
            "principal or managed identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, "
            "AZURE_CLIENT_SECRET) that DefaultAzureCredential picks up"
        )
    return ChainedTokenCredential(default, InteractiveBrowserCredential())


def _in_rest_conversion() -> bool:
    """azure-ai-ml's test for "called while converting a REST object" (``_experimental.py``
    ``_should_skip_warning``: is any caller named ``_from_rest_object``), by walking the frames.
    The SDK asks ``inspect.stack()``, which reads the source file of every frame, for every
    experimental class built and method called: a twentieth of a second each under pytest's
    deep stacks, most of the unit suite's Azure time."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_from_rest_object":
            return True
        frame = frame.f_back
    return False


def cheaper_experimental_check() -> None:
    """Gives azure-ai-ml the frame walk above in place of its stack read: the same answer,
    so the same warnings; nothing changes where a release renames the private function."""
    from azure.ai.ml._utils import _experimental

    if callable(getattr(_experimental, "_should_skip_warning", None)):
        _experimental._should_skip_warning = _in_rest_conversion


def _option(name: str) -> str:
    option = BY_NAME[name]
    return f"{option.cli} ({' or '.join(option.env_names)})"


def missing_workspace_message(config: HarnessConfig, reason: str) -> str:
    missing = [_option(n) for n in WORKSPACE_OPTIONS if getattr(config, n) is None]
    return (
        f"no Azure ML workspace to use: {reason}; set {', '.join(missing)}, or point "
        f"{_option('azure_config_file')} at the workspace's config.json"
    )


class AzureClients:
    """The workspace and registry clients of one run, sharing one credential and retry policy."""

    def __init__(
        self,
        config: HarnessConfig,
        credential: TokenCredential | None = None,
        retry_total: int | None = None,
    ) -> None:
        self.config = config
        self._credential = credential
        # azure-core's RetryPolicy retries 429/5xx honouring Retry-After; only its budget is ours.
        self.client_kwargs: dict[str, Any] = {"show_progress": False}
        if retry_total is not None:
            self.client_kwargs["retry_total"] = retry_total

    @cached_property
    def credential(self) -> TokenCredential:
        return self._credential or make_credential(self.config)

    @cached_property
    def workspace(self) -> MLClient:
        """From explicit ids when all are set, else from a workspace config.json."""
        from azure.ai.ml import MLClient
        from azure.ai.ml.exceptions import ValidationException

        cheaper_experimental_check()
        config = self.config
        ids = [getattr(config, name) for name in WORKSPACE_OPTIONS]
        if all(ids):
            return MLClient(self.credential, *ids, **self.client_kwargs)
        path = config.azure_config_file
        if path is not None and not path.is_file():
            raise ConfigError(missing_workspace_message(config, f"{path} is not a file"))
        try:
            return MLClient.from_config(self.credential, path=path, **self.client_kwargs)
        except ValidationException as exc:
            raise ConfigError(missing_workspace_message(config, exc.message)) from None

    @cached_property
    def model_registry(self) -> MLClient:
        """The registry holding the foundation model (``azureml``, ``azureml-meta``, ...)."""
        return self._registry("azure_model_registry")

    @cached_property
    def component_registry(self) -> MLClient:
        """The registry holding chat_completion_pipeline: the same client when both settings
        name one registry."""
        if self.config.azure_component_registry == self.config.azure_model_registry:
            return self.model_registry
        return self._registry("azure_component_registry")

    def _registry(self, setting: str) -> MLClient:
        """A registry client (its constructor asks the discovery service where it lives)."""
        from azure.ai.ml import MLClient
        from azure.core.exceptions import AzureError

        cheaper_experimental_check()
        name = getattr(self.config, setting)
        try:
            return MLClient(self.credential, registry_name=name, **self.client_kwargs)
        except AzureError as exc:
            raise read_failed(
                exc,
                "where the registry lives (discovery)",
                f"registry {name}",
                f"pass {BY_NAME[setting].cli} with a registry it can read",
            ) from None

    def token(self, scope: str = ARM_SCOPE) -> str:
        return self.credential.get_token(scope).token

    def close(self) -> None:
        """Close a credential this object made (its token cache and transports)."""
        close = getattr(self.__dict__.get("credential"), "close", None)
        if self._credential is None and callable(close):
            close()


# -- the service's answers: azure-core's retry policy already retries throttling and transient
# 5xx (honouring Retry-After) and the SDK's pollers poll; the harness adds deadlines
# (harness.waiting) and messages that quote the service instead of a traceback.


def service_message(exc: BaseException) -> str:
    """``code: message`` as the service sent it, else the exception's first line."""
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if message:
        return f"{code}: {message}" if code else str(message)
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def read_failed(
    exc: AzureError, wanted: str, where: str, fix: str, error: type[HarnessError] = HarnessError
) -> HarnessError:
    """A read that failed, said plainly. Access is blamed only when the service answered
    401/403; a credential that produced no token says so; anything else quotes the service."""
    from azure.core.exceptions import ClientAuthenticationError

    status = getattr(exc, "status_code", None)
    said = service_message(exc)
    if status in (401, 403):
        return error(
            f"{where} refused to show {wanted} to this credential (HTTP {status}: "
            f"{said}); give the identity read access, or {fix}"
        )
    if status is None and isinstance(exc, ClientAuthenticationError):
        return error(
            f"no token to read {wanted} from {where}: {said}; configure a credential "
            "DefaultAzureCredential finds (in CI: AZURE_CLIENT_ID, AZURE_TENANT_ID, "
            "AZURE_CLIENT_SECRET)"
        )
    code = f"HTTP {status}: " if status else ""
    return error(
        f"cannot read {wanted} from {where} ({code}{said}); retry later, or check "
        f"the network, or {fix}"
    )


def is_quota(text: str) -> bool:
    return "quota" in text.casefold()


def status_text(value: Any) -> str:
    """SDK states are str enums (``JobStatus.COMPLETED``); the harness compares plain text."""
    return str(getattr(value, "value", value) or "")
