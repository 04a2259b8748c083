"""The acceptance suite: one question a user cares about per test, on any backend.

Fixtures come from the harness plugin (``harness/plugin.py``); any of them can be replaced
in a conftest. The order below is the workflow's order, which is also the cheapest order to
fail in.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import scoring
from harness.backends.base import (
    Backend,
    Compute,
    Deployment,
    Endpoint,
    JobRun,
    LikelihoodComparison,
    RegisteredModel,
    TrainingMetrics,
    finetuned_model_name,
)
from harness.config import HarnessConfig
from harness.data import PreparedData
from harness.model_card import ModelCard
from harness.scoring import Samples


def test_foundation_model_resolves_and_its_tags_parse(
    foundation_model: ModelCard, harness_config: HarnessConfig
) -> None:
    assert foundation_model.name == harness_config.model_name
    if harness_config.model_version.isdigit():
        assert foundation_model.version == harness_config.model_version
    assert foundation_model.version and foundation_model.id
    assert foundation_model.task in (None, "chat-completion")
    # The size checks rest on the allow-lists. When the registry answered none, the run went
    # on only because the sizes were chosen explicitly: that part could not run, and says so.
    from harness.compute import ALLOW_LISTS_UNKNOWN

    if foundation_model.missing_allow_lists():
        pytest.skip(f"{ALLOW_LISTS_UNKNOWN}: {foundation_model.allow_lists_found()}")
    assert foundation_model.inference_allow_list and foundation_model.finetune_allow_list, (
        f"{foundation_model.label} has an empty allow-list ({foundation_model.sources()})"
    )


def test_compute_is_allowed_and_has_its_accelerators(
    finetune_compute: Compute, foundation_model: ModelCard
) -> None:
    """Every training device counts: GPUs on Azure, GPUs or CPU processes locally."""
    from harness.compute import check_finetune_sku

    check_finetune_sku(foundation_model, finetune_compute.sku)
    assert finetune_compute.provisioning_state.lower() == "succeeded"
    assert finetune_compute.gpus_per_node >= 1, f"{finetune_compute.sku} has no training device"


def test_training_data_is_valid(training_data: PreparedData) -> None:
    from harness.data import read_jsonl, validate_row

    for split in ("train_sft", "test_sft", "test_gen"):
        rows = read_jsonl(training_data.files[split])
        assert rows, f"{split} is empty"
        assert [validate_row(row) for row in rows] == [None] * len(rows)


def test_finetune_job_completed(finetune_job: JobRun) -> None:
    assert finetune_job.status == "Completed", f"{finetune_job.status}: {finetune_job.url}"


def test_training_loss_went_down(training_metrics: TrainingMetrics) -> None:
    losses = training_metrics.values("loss")
    assert len(losses) >= 2, f"too few loss points to judge training: {losses}"
    assert losses[-1] < losses[0], f"training loss did not go down: {losses}"


def test_eval_loss_after_finetuning_is_lower_than_before(
    training_metrics: TrainingMetrics,
) -> None:
    """Quality gate, on every backend that reports eval loss before and after."""
    eval_losses = training_metrics.values("eval_loss")
    if len(eval_losses) < 2:
        pytest.skip(f"the backend reported {len(eval_losses)} eval_loss value(s); need two")
    assert eval_losses[-1] < eval_losses[0], f"eval loss did not improve: {eval_losses}"


def test_model_is_registered_with_lineage_to_the_job(
    finetuned_model: RegisteredModel, finetune_job: JobRun, foundation_model: ModelCard
) -> None:
    """Lineage as the registry reports it for the registered model, not as the client sent it."""
    assert finetuned_model.name == finetuned_model_name(foundation_model.name)
    assert finetuned_model.job_name == finetune_job.name, (
        f"the registry reports {finetuned_model.ref} as the output of job "
        f"{finetuned_model.job_name or '(none)'}, not of {finetune_job.name}"
    )


def test_endpoint_is_provisioned_with_key_auth(online_endpoint: Endpoint) -> None:
    assert online_endpoint.provisioning_state == "Succeeded"
    assert online_endpoint.auth_mode == "key"


def test_deployment_takes_all_traffic(
    deployment: Deployment, finetuned_model: RegisteredModel
) -> None:
    assert deployment.provisioning_state == "Succeeded"
    assert deployment.traffic_percent == 100
    assert deployment.model_id == finetuned_model.id


def test_scoring_returns_assistant_text_within_the_timeout(
    scored_samples: Samples,
    deployment: Deployment,
    harness_config: HarnessConfig,
) -> None:
    """Every sample answered with text; the report scores each answer against its reference."""
    for sample in scored_samples.items:
        shown = f"sample {sample.index}: HTTP {sample.status_code}, {sample.body[:500]!r}"
        assert not sample.error, f"{shown}: {sample.error}"
        assert sample.answer.strip(), f"empty answer: {shown}"
        assert sample.latency_s <= deployment.request_timeout_ms / 1000, shown
        assert sample.latency_s <= harness_config.scoring_timeout_s, shown


def test_finetuning_made_the_reference_answers_more_likely(
    reference_likelihood: LikelihoodComparison | None,
) -> None:
    """Quality gate robust on any model size: the fine-tuned model gives the test_gen reference
    answers a higher mean log-likelihood per token than its foundation model."""
    if reference_likelihood is None:
        pytest.skip("this backend cannot score the foundation model without deploying it")
    before, after = reference_likelihood.foundation.mean, reference_likelihood.finetuned.mean
    assert reference_likelihood.improved, f"log-likelihood per token {before:.4f} -> {after:.4f}"


def test_no_figure_regressed_against_the_compared_run(
    finetune_job: JobRun,
    training_metrics: TrainingMetrics,
    scored_samples: Samples,
    harness_config: HarnessConfig,
) -> None:
    """--compare-to: eval loss, answer score, scoring p95 latency and job duration stay within
    their tolerances of the last passing run of this model (or of a given report)."""
    from harness.verdict import compare_so_far

    if harness_config.compare_to is None:
        pytest.skip("no --compare-to: nothing to compare this run with")
    comparison = compare_so_far(harness_config)
    if comparison is None:
        pytest.skip(f"no passing run in the history {harness_config.history_dir} yet")
    assert not comparison.regressed, comparison.render()


def test_a_raw_https_request_with_the_endpoint_key_is_answered(
    backend: Backend,
    online_endpoint: Endpoint,
    deployment: Deployment,
    scoring_requests: list[dict[str, Any]],
) -> None:
    """What a client outside the SDK does: POST the scoring URI with the key."""
    key = backend.endpoint_key(online_endpoint)
    reply = backend.invoke_raw(online_endpoint, scoring_requests[0], key=key)
    assert reply.status_code == 200, reply.summary()
    assert scoring.parse_response(reply.body, reply.status_code).text.strip()


def test_request_without_the_key_is_rejected(
    backend: Backend,
    online_endpoint: Endpoint,
    deployment: Deployment,
    scoring_requests: list[dict[str, Any]],
) -> None:
    for key in (None, "not-the-endpoint-key"):
        reply = backend.invoke_raw(online_endpoint, scoring_requests[0], key=key)
        assert reply.status_code in (401, 403), f"key {key!r}: {reply.summary()}"
