"""The local backend: the whole fine-tune/register/deploy/score workflow on one machine.

Importing it is cheap; torch, transformers and MLflow load inside the steps that need them.
"""

from harness.backends.local.backend import LocalBackend
from harness.backends.local.defaults import DEFAULT_MODEL_NAME, LOCAL_CPU, LOCAL_GPU

__all__ = ["DEFAULT_MODEL_NAME", "LOCAL_CPU", "LOCAL_GPU", "LocalBackend"]
