"""Answer quality: how close a deployed model's answer is to the reference assistant turn.

The metric is chrF (character n-gram F-score, Popović 2015) as computed by ``sacrebleu``, the
reference implementation used by the WMT evaluations, with its default settings (character
n-grams up to 6, beta 2, no word n-grams). Why chrF rather than ROUGE-L from ``rouge-score``:

- it needs no tokenizer, so it treats every language, code and odd punctuation alike; the
  ``rouge-score`` tokenizer keeps only ``[a-z0-9]`` and scores a non-English answer as 0;
- it gives partial credit for inflections and near-misses ("deploy" vs "deployed"), which
  matters for a short chat answer sampled at temperature 0.6;
- ``sacrebleu`` is maintained (2.6.0, 2026) and stamps a signature on the metric
  (character and word orders, beta, version) so nightly numbers stay comparable across upgrades;
  ``rouge-score`` has had no release since 2022 and pulls in ``nltk`` and ``absl``.

A score is 0..100 (higher is better); it measures overlap with one reference answer, not
truth, so it is compared between versions of one pipeline, never read as an absolute grade.
The library is imported only when a score is computed, never at plugin import.

The second measure, for a backend that can load both models itself (the local one), is the
teacher-forced log-likelihood of the reference assistant turns under the foundation model and
under the fine-tuned model (``LikelihoodComparison``): smooth and robust even for a tiny model
whose sampled answers are noise either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

METRIC = "chrF"


@cache
def _chrf() -> Any:
    from sacrebleu.metrics.chrf import CHRF

    return CHRF()


def answer_score(answer: str, reference: str) -> float:
    """chrF of one answer against its reference, 0..100; an empty answer scores 0."""
    if not answer.strip() or not reference.strip():
        return 0.0
    return round(float(_chrf().sentence_score(answer, [reference]).score), 4)


def mean_score(scores: Iterable[float | None]) -> float | None:
    """The mean of the scores that exist; None when no sample was scored."""
    present = [s for s in scores if s is not None]
    return sum(present) / len(present) if present else None


def metric_label() -> str:
    """The metric and its exact configuration, e.g. ``chrF (nc:6|nw:0|beta:2|sacrebleu 2.6.0)``."""
    import sacrebleu

    chrf = _chrf()
    return (
        f"{METRIC} (nc:{chrf.char_order}|nw:{chrf.word_order}|beta:{chrf.beta}|"
        f"sacrebleu {sacrebleu.__version__})"
    )
