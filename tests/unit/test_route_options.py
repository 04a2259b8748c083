"""The fine-tuning route's options: declared like every other, refused where they make no sense,
and part of what a run is called in its report and history."""

from __future__ import annotations

import pytest

from harness import config
from harness.errors import ConfigError

AZURE = {
    "backend": "azure",
    "azure_subscription_id": "s",
    "azure_resource_group": "g",
    "azure_workspace": "w",
}


def test_the_pipeline_route_is_the_default() -> None:
    cfg = config.resolve(cli=AZURE, env={}, ini={})
    assert (cfg.finetune_route, cfg.serverless, cfg.route) == ("pipeline", False, "pipeline")


def test_the_route_comes_from_option_env_or_ini_with_its_source() -> None:
    cfg = config.resolve(cli=AZURE, env={"HARNESS_FINETUNE_ROUTE": "finetuning-job"}, ini={})
    assert cfg.route == "finetuning-job"
    assert cfg.sources["finetune_route"] == "env HARNESS_FINETUNE_ROUTE"
    cfg = config.resolve(
        cli={**AZURE, "finetune_route": "finetuning-job", "serverless": True}, env={}, ini={}
    )
    assert cfg.route == "finetuning-job-serverless"
    assert "--finetune-route" in config.BY_NAME["finetune_route"].cli


def test_an_unknown_route_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of pipeline, finetuning-job"):
        config.resolve(cli={**AZURE, "finetune_route": "foundry"}, env={}, ini={})


def test_serverless_needs_the_finetuning_job_route() -> None:
    with pytest.raises(ConfigError, match="--serverless needs --finetune-route finetuning-job"):
        config.resolve(cli={**AZURE, "serverless": True}, env={}, ini={})


def test_the_local_backend_has_one_route() -> None:
    with pytest.raises(ConfigError, match="pass --backend azure or drop --finetune-route"):
        config.resolve(cli={"finetune_route": "finetuning-job"}, env={}, ini={})


def test_the_report_options_carry_the_route() -> None:
    cfg = config.resolve(cli={**AZURE, "finetune_route": "finetuning-job"}, env={}, ini={})
    assert cfg.report_options()["finetune_route"].startswith("finetuning-job (option")
