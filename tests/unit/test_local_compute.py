"""This machine as compute, and the job's settings from the component's declared inputs."""

from __future__ import annotations

import pytest

from harness.backends.local import compute
from harness.backends.local.models import tiny_model_tags
from harness.backends.local.training.parameters import resolve, unused_note
from harness.backends.local.training.tiny_model import TINY_MODEL_DEFAULTS
from harness.errors import ComputeError, ParameterError
from harness.model_card import ModelCard, model_card


def card(**tags: str) -> ModelCard:
    return model_card("Phi-3-tiny-ultrachat", "1", "models:/x/1", {**tiny_model_tags(), **tags})


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "cuda_devices", lambda: 0)


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "cuda_devices", lambda: 1)


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "cuda_devices", lambda: 4)


@pytest.mark.usefixtures("cpu_only")
def test_a_cpu_machine_is_local_cpu_with_one_device() -> None:
    found = compute.local_compute(card(), "local", None)
    assert (found.name, found.sku, found.gpus_per_node) == ("local", "Local_CPU", 1)
    assert compute.training_device(found) == "cpu"
    assert compute.serving_device("local_cpu") == "cpu"


@pytest.mark.usefixtures("cpu_only")
def test_local_train_processes_sets_the_cpu_processes_of_the_job() -> None:
    found = compute.local_compute(card(), "local", None, processes=2)
    assert (found.sku, found.gpus_per_node) == ("Local_CPU", 2)


@pytest.mark.usefixtures("four_gpus")
def test_a_gpu_machine_trains_on_every_gpu_or_on_as_many_as_asked() -> None:
    assert compute.local_compute(card(), "local", None).gpus_per_node == 4
    assert compute.local_compute(card(), "local", None, processes=2).gpus_per_node == 2
    assert compute.local_compute(card(), "local", "Local_CPU", processes=3).gpus_per_node == 3
    with pytest.raises(ComputeError, match="at most 4"):
        compute.local_compute(card(), "local", None, processes=5)


@pytest.mark.usefixtures("one_gpu")
def test_a_gpu_machine_defaults_to_local_gpu_and_can_still_use_the_cpu() -> None:
    assert compute.local_compute(card(), "local", None).sku == "Local_GPU"
    assert compute.training_device(compute.local_compute(card(), "local", "Local_CPU")) == "cpu"
    assert compute.serving_device("Local_GPU") == "cuda"


@pytest.mark.usefixtures("cpu_only")
def test_a_gpu_sku_without_a_gpu_is_refused() -> None:
    with pytest.raises(ComputeError, match="no CUDA GPU"):
        compute.local_compute(card(), "local", "Local_GPU")


@pytest.mark.usefixtures("cpu_only")
def test_an_azure_sku_is_refused_naming_the_local_ones() -> None:
    with pytest.raises(ComputeError, match="Local_CPU") as raised:
        compute.local_compute(card(), "local", "Standard_NC24ads_A100_v4")
    assert "--compute-sku" in str(raised.value)


@pytest.mark.usefixtures("cpu_only")
def test_the_models_allow_list_applies_to_local_skus() -> None:
    gpu_only = card(finetune_compute_allow_list="['Local_GPU']")
    with pytest.raises(ComputeError, match="not allowed"):
        compute.local_compute(gpu_only, "local", None)


def test_settings_take_the_parameters_over_the_components_defaults() -> None:
    settings, unused = resolve({**TINY_MODEL_DEFAULTS, "learning_rate": "1e-3", "foo": 1})
    assert settings.learning_rate == 1e-3 and settings.max_steps == 60 and settings.lora
    assert settings.precision == "32" and settings.adam_epsilon == 1e-8
    assert settings.evaluation_strategy == "epoch" and settings.seed == 42  # component defaults
    assert "apply_deepspeed" in unused and "foo" in unused
    assert (settings.packing, settings.padding_free, settings.attn_implementation) == (
        "false",
        "auto",
        "auto",
    )  # the local job's own inputs, with their defaults
    note = unused_note(unused)
    assert "not applicable" in note and "apply_deepspeed" in note and "not used" in note


def test_an_impossible_setting_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="lr_scheduler_type"):
        resolve({"lr_scheduler_type": "sometimes"})
    with pytest.raises(ParameterError, match="padding_free"):
        resolve({"padding_free": "sometimes"})


def test_the_local_jobs_own_inputs_pass_the_component_fit_and_azures_drop_them() -> None:
    from harness.backends.local.training.parameters import LOCAL_INPUTS, local_component_inputs
    from harness.finetune_params import fit_to_component, load_component_inputs

    asked = {"packing": True, "gradient_checkpointing": "true", "learning_rate": "1e-3"}
    local = fit_to_component(asked, local_component_inputs())
    assert (
        local.parameters
        == {"packing": "true", "gradient_checkpointing": "true", "learning_rate": 1e-3}
        and not local.dropped
    )
    azure = fit_to_component(asked, load_component_inputs())
    assert set(azure.dropped) == {"packing", "gradient_checkpointing"}
    assert not set(LOCAL_INPUTS) & set(load_component_inputs())
