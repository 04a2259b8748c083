"""Text generation for the scoring script: the registered MLflow model through transformers.

A prompt longer than the model's context is cut from the left (the latest turns matter most),
so a long test conversation still gets an answer instead of a server error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.backends.local.mlflow_model import hf_paths
from harness.backends.local.server import mark
from harness.backends.local.server.contract import ChatRequest, Generation


class Generator:
    """Loads the model once (in the server's ``init``) and answers chat requests."""

    def __init__(self, model_dir: Path, device: str) -> None:
        import torch
        import transformers

        mark("libraries_imported")
        hf: Any = transformers  # partly typed; the model classes are dynamic

        model_path, tokenizer_path = hf_paths(model_dir)
        self.tokenizer = hf.AutoTokenizer.from_pretrained(tokenizer_path)
        dtype = (
            torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        )
        self.model = (
            hf.AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
        )
        self.device = device
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else min(self.eos_ids, default=0)
        )
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048))

    def __call__(self, request: ChatRequest) -> Generation:
        import torch

        p = request.parameters
        ids = self._prompt(request.messages, p["max_new_tokens"])
        inputs = torch.tensor([ids], device=self.device)
        with torch.no_grad():
            out = self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), **self._options(p)
            )
        new = out[0, len(ids) :].tolist()
        finish = "stop" if new and new[-1] in self.eos_ids else "length"
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return Generation(text, finish, len(ids), len(new))

    def _prompt(self, messages: list[dict[str, str]], max_new_tokens: int) -> list[int]:
        out = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        ids = list(out["input_ids"])
        return ids[-max(1, self.context - max_new_tokens) :]

    def _options(self, p: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_new_tokens": p["max_new_tokens"],
            "do_sample": p["do_sample"],
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids) or None,
        }
        if p["do_sample"]:
            options.update(temperature=float(p["temperature"]), top_p=float(p["top_p"]))
        else:
            options.update(temperature=None, top_p=None)
        return options
