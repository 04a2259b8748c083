"""Answer quality: chrF of the answer against the reference assistant turn, 0..100."""

from __future__ import annotations

from harness.quality import answer_score, mean_score, metric_label

REFERENCE = "Azure Machine Learning deploys the model behind a managed online endpoint."


def test_the_reference_itself_scores_100_and_nothing_in_common_scores_near_0() -> None:
    assert answer_score(REFERENCE, REFERENCE) == 100.0
    assert answer_score("qqq zzz", REFERENCE) < 5


def test_a_closer_answer_scores_higher() -> None:
    close = "Azure Machine Learning deploys models behind managed online endpoints."
    far = "The weather is nice today."
    assert answer_score(close, REFERENCE) > answer_score(far, REFERENCE)
    assert 50 < answer_score(close, REFERENCE) < 100


def test_empty_answers_score_0() -> None:
    assert answer_score("", REFERENCE) == 0.0 and answer_score("  \n", REFERENCE) == 0.0


def test_no_tokenizer_needed_non_english_text_is_scored() -> None:
    reference = "Le modèle est déployé derrière un point de terminaison en ligne."
    assert answer_score("Le modèle est déployé en ligne.", reference) > 30


def test_the_mean_skips_unscored_samples_and_is_none_without_any() -> None:
    assert mean_score([10.0, None, 30.0]) == 20.0
    assert mean_score([None]) is None


def test_the_label_names_the_metric_configuration_and_library_version() -> None:
    import sacrebleu

    assert metric_label() == f"chrF (nc:6|nw:0|beta:2|sacrebleu {sacrebleu.__version__})"
