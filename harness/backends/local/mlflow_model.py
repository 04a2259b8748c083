"""MLflow models in the layout of the transformers flavor, as Azure's pipeline produces them.

Saving goes through ``mlflow.transformers.save_model``; requirements are given explicitly
because inferring them imports torchvision, which is not installed next to this torch.
Reading only needs the ``MLmodel`` file to find the Hugging Face model and tokenizer
directories, so the scoring script and the training job load them with transformers directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from harness.errors import HarnessError

PIP_REQUIREMENTS = ("torch", "transformers", "tokenizers", "accelerate")


def save(model: Any, tokenizer: Any, path: Path) -> None:
    """Write an MLflow model (transformers flavor, text-generation task) to ``path``."""
    import mlflow.transformers

    mlflow.transformers.save_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        path=str(path),
        task="text-generation",
        pip_requirements=list(PIP_REQUIREMENTS),
    )


def save_directory(source: Path, path: Path) -> None:
    """Write an MLflow model from a Hugging Face checkpoint directory.

    The checkpoint is loaded (in its own dtype) and saved like a trained model: MLflow's
    path-only variant fails with transformers 5 (``build_flavor_config_from_local_checkpoint``).
    """
    import transformers

    hf: Any = transformers  # partly typed; the model classes are dynamic
    tokenizer = hf.AutoTokenizer.from_pretrained(source)
    model = hf.AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    save(model, tokenizer, path)


def hf_paths(model_dir: Path) -> tuple[Path, Path]:
    """(model directory, tokenizer directory) of an MLflow transformers model."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise HarnessError(
            f"{model_dir} is not an MLflow model: expected an MLmodel file; register the model "
            "again (python -m harness register-model DIR --name NAME)"
        )
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("transformers")
    if not flavor:
        raise HarnessError(
            f"{mlmodel} has no transformers flavor; found {mlmodel.read_text()[:300]}"
        )
    weights = model_dir / str(flavor.get("model_binary", "model"))
    components = model_dir / "components" / "tokenizer"
    return weights, components if components.is_dir() else weights


def local_path(uri: str) -> Path:
    """The filesystem path of a ``file://`` URI or a plain path (artifact and model sources)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    raise HarnessError(f"{uri} is not a local path; the local backend only stores files locally")
