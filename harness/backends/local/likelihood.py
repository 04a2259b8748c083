"""How likely a model finds the reference answers: the local backend's quality gate.

chrF of sampled answers says little about a tiny model (its answers are noise either way),
but the teacher-forced log-likelihood of the reference assistant turns of the test_gen
conversations is smooth and cheap: if fine-tuning helped, the fine-tuned model gives the
references a higher mean per-token log-likelihood than its foundation model. Both are computed
here, in the harness process, from the MLflow model directories the local registry stores, so
the foundation model never has to be deployed.

Only assistant tokens count, masked exactly as the fine-tune job masks them
(``chat_data.encode``: the template's ``{% generation %}`` markers when it has them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backends.local import mlflow_model
from harness.backends.local.training import chat_data
from harness.errors import DataError
from harness.quality import Likelihood, LikelihoodComparison

logger = logging.getLogger("harness")
MAX_LEN = 1024
BATCH = 4


def _load(model_dir: Path) -> tuple[Any, Any]:
    import transformers

    hf: Any = transformers  # partly typed; the auto classes are dynamic
    weights, tokenizer_dir = mlflow_model.hf_paths(model_dir)
    tokenizer = hf.AutoTokenizer.from_pretrained(tokenizer_dir)
    model = hf.AutoModelForCausalLM.from_pretrained(weights, dtype="auto")
    return model.eval(), tokenizer


def _sum_and_count(model: Any, batch: list[chat_data.Example], pad_id: int) -> tuple[float, int]:
    """Summed log-probabilities of the labelled tokens of one batch, and how many there are."""
    import torch

    tensors = {k: v.to(model.device) for k, v in chat_data.collate(batch, pad_id).items()}
    logits = model(input_ids=tensors["input_ids"],
                   attention_mask=tensors["attention_mask"]).logits[:, :-1].float()
    targets = tensors["labels"][:, 1:]
    mask = targets != chat_data.IGNORE
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1))
    return float(picked.squeeze(-1)[mask].sum()), int(mask.sum())


def reference_likelihood(model_dir: Path, conversations: Sequence[Sequence[dict[str, str]]],
                         max_len: int = MAX_LEN, batch_size: int = BATCH) -> Likelihood:
    """Mean per-token log-likelihood of the assistant turns of ``conversations``."""
    import torch

    started = time.monotonic()
    model, tokenizer = _load(model_dir)
    examples = chat_data.encode_all(tokenizer, conversations, max_len)
    if not examples:
        raise DataError(f"none of the {len(conversations)} conversations has an assistant "
                         "token to score; pass test_gen conversations with assistant turns")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in chat_data.batches(examples, batch_size, seed=None):
            summed, tokens = _sum_and_count(model, batch, pad_id)
            total, count = total + summed, count + tokens
    result = Likelihood(total / count, count, len(examples))
    logger.info("reference log-likelihood of %s: %.4f nats/token over %d tokens (%.1f s)",
                model_dir, result.mean, count, time.monotonic() - started)
    return result


def compare_models(foundation_dir: Path, finetuned_dir: Path,
                   conversations: Sequence[Sequence[dict[str, str]]],
                   max_len: int = MAX_LEN) -> LikelihoodComparison:
    """Both models on the same references; ``improved`` is the quality gate.

    The fine-tuned model keeps its foundation's tokenizer, so both count the same tokens; when
    they do not, the means are per different tokens and the log says so.
    """
    comparison = LikelihoodComparison(
        reference_likelihood(foundation_dir, conversations, max_len),
        reference_likelihood(finetuned_dir, conversations, max_len))
    if comparison.foundation.tokens != comparison.finetuned.tokens:
        logger.warning("the models tokenise the references differently (%d vs %d tokens): "
                       "their log-likelihoods per token are not strictly comparable",
                       comparison.foundation.tokens, comparison.finetuned.tokens)
    return comparison
