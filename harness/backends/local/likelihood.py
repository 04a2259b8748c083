"""How likely a model finds the reference answers: the local backend's quality gate.

chrF of sampled answers says little about a tiny model (its answers are noise either way),
but the teacher-forced log-likelihood of the reference assistant turns of the test_gen
conversations is smooth and cheap: if fine-tuning helped, the fine-tuned model gives the
references a higher mean per-token log-likelihood than its foundation model. Both are computed
here, in the harness process, from the MLflow model directories the local registry stores, so
the foundation model never has to be deployed.

Only assistant tokens count, masked exactly as the fine-tune job masks them
(``chat_data.encoder``: the template's ``{% generation %}`` markers when it has them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backends.base import Likelihood, LikelihoodComparison
from harness.backends.local import mlflow_model
from harness.backends.local.training import chat_data
from harness.errors import DataError

logger = logging.getLogger("harness")
MAX_LEN = 1024


def _load(model_dir: Path) -> tuple[Any, Any]:
    import transformers

    hf: Any = transformers  # partly typed; the auto classes are dynamic
    weights, tokenizer_dir = mlflow_model.hf_paths(model_dir)
    tokenizer = hf.AutoTokenizer.from_pretrained(tokenizer_dir)
    model = hf.AutoModelForCausalLM.from_pretrained(weights, dtype="auto")
    return model.eval(), tokenizer


def _sum_and_count(model: Any, ids: list[int], mask: list[int]) -> tuple[float, int]:
    """Summed log-probabilities of one conversation's assistant tokens, and how many."""
    import torch

    inputs = torch.tensor([ids], device=model.device)
    logits = model(input_ids=inputs).logits[0, :-1].float()
    targets = inputs[0, 1:]
    scored = torch.tensor(mask[1:], device=model.device, dtype=torch.bool)
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return float(picked[scored].sum()), int(scored.sum())


def reference_likelihood(
    model_dir: Path, conversations: Sequence[Sequence[dict[str, str]]], max_len: int = MAX_LEN
) -> Likelihood:
    """Mean per-token log-likelihood of the assistant turns of ``conversations``, one
    conversation at a time (no padding to get wrong)."""
    import torch

    started = time.monotonic()
    model, tokenizer = _load(model_dir)
    encode = chat_data.encoder(tokenizer)
    total, count, scored = 0.0, 0, 0
    with torch.inference_mode():
        for conversation in conversations:
            ids, mask = encode(conversation)
            ids, mask = ids[:max_len], mask[:max_len]
            if any(mask[1:]):
                summed, tokens = _sum_and_count(model, ids, mask)
                total, count, scored = total + summed, count + tokens, scored + 1
    if not count:
        raise DataError(
            f"none of the {len(conversations)} conversations has an assistant "
            "token to score; pass test_gen conversations with assistant turns"
        )
    result = Likelihood(total / count, count, scored)
    logger.info(
        "reference log-likelihood of %s: %.4f nats/token over %d tokens (%.1f s)",
        model_dir,
        result.mean,
        count,
        time.monotonic() - started,
    )
    return result


def compare_models(
    foundation_dir: Path,
    finetuned_dir: Path,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_len: int = MAX_LEN,
) -> LikelihoodComparison:
    """Both models on the same references; ``improved`` is the quality gate.

    The fine-tuned model keeps its foundation's tokenizer, so both count the same tokens; when
    they do not, the means are per different tokens and the log says so.
    """
    comparison = LikelihoodComparison(
        reference_likelihood(foundation_dir, conversations, max_len),
        reference_likelihood(finetuned_dir, conversations, max_len),
    )
    if comparison.foundation.tokens != comparison.finetuned.tokens:
        logger.warning(
            "the models tokenise the references differently (%d vs %d tokens): "
            "their log-likelihoods per token are not strictly comparable",
            comparison.foundation.tokens,
            comparison.finetuned.tokens,
        )
    return comparison
