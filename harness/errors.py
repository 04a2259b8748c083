"""The harness's few error types.

Every message names the resource, what was expected, what was found and the next step, so
that the error alone is enough to act on. Nothing here wraps a traceback as the only clue.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose; the CLI prints it without traceback."""


class ConfigError(HarnessError):
    """An option, environment variable or ini value is impossible."""


class TagError(HarnessError):
    """A model tag from the registry cannot be parsed."""


class ComputeError(HarnessError):
    """A compute SKU or instance type is not allowed, not found, or failed to provision."""


class ParameterError(HarnessError):
    """A fine-tune parameter does not fit the pipeline component's declared inputs."""


class DataError(HarnessError):
    """The dataset cannot be loaded or has invalid rows."""


class JobError(HarnessError):
    """A fine-tune job ended in any state but Completed, or missed its deadline."""


class DeploymentError(HarnessError):
    """An endpoint or deployment failed; the message carries the deployment logs."""


class ScoringError(HarnessError):
    """A scoring response is an error or holds no text; the message shows the body."""


class CleanupError(HarnessError):
    """Deleting a resource failed; the resource may still exist and cost money."""


class ReportError(HarnessError):
    """A run report, its events or a history entry cannot be read or does not fit the schema."""
