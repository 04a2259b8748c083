"""Run ids, Azure-valid unique names (property-style), ownership tags and expiry."""

from __future__ import annotations

import random
import re
import string
from datetime import UTC, datetime, timedelta

import pytest

from harness import naming
from harness.errors import ConfigError

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
AZURE_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def assert_valid(name: str, max_len: int = 32) -> None:
    assert 3 <= len(name) <= max_len, name
    assert AZURE_NAME.fullmatch(name), name


def random_text(rng: random.Random, max_len: int) -> str:
    alphabet = string.ascii_letters + string.digits + "-_. /:äé"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len)))


def test_run_id_shape() -> None:
    run_id = naming.new_run_id(NOW)
    assert re.fullmatch(r"h250304050607[a-z0-9]{4}", run_id)
    assert re.fullmatch(r"[a-z][a-z0-9]{2,19}", naming.new_run_id())  # config's run id rule
    assert len({naming.new_run_id(NOW) for _ in range(200)}) > 190


def test_names_from_real_run_ids_are_valid_and_unique() -> None:
    names = set()
    for _ in range(300):
        run_id = naming.new_run_id()
        for name in (naming.endpoint_name(run_id), naming.deployment_name(run_id)):
            assert_valid(name)
            assert run_id in name
            names.add(name)
    assert len(names) == 600  # never reused


def test_names_carry_run_id_and_randomness() -> None:
    first, second = naming.endpoint_name("h1"), naming.endpoint_name("h1")
    assert first != second
    assert first.startswith("ep-h1-")
    assert naming.deployment_name("h1").startswith("dep-h1-")


def test_random_prefixes_and_run_ids_property() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        max_len = rng.randint(8, 64)
        name = naming.resource_name(random_text(rng, 40), random_text(rng, 40), max_len)
        assert_valid(name, max_len)


def test_run_id_kept_when_prefix_is_long() -> None:
    run_id = naming.new_run_id(NOW)
    name = naming.resource_name("a-very-long-prefix-for-a-resource", run_id)
    assert_valid(name)
    assert run_id in name


@pytest.mark.parametrize("prefix", ["", "9lives", "--", "UPPER_case"])
def test_awkward_prefixes(prefix: str) -> None:
    assert_valid(naming.resource_name(prefix, "h123"))


def test_max_len_too_small() -> None:
    with pytest.raises(ConfigError, match="max_len"):
        naming.resource_name("ep", "h1", max_len=5)


def test_ownership_tags() -> None:
    tags = naming.ownership_tags("hrun", 6, now=NOW)
    assert tags == {
        naming.TAG_RUN_ID: "hrun",
        naming.TAG_CREATED: "2025-03-04T05:06:07+00:00",
        naming.TAG_EXPIRES: "2025-03-04T11:06:07+00:00",
    }
    assert (naming.TAG_RUN_ID, naming.TAG_CREATED, naming.TAG_EXPIRES) == (
        "harness-run-id",
        "harness-created",
        "harness-expires",
    )
    assert naming.ownership_tags("r", 1.5, now=NOW)[naming.TAG_EXPIRES].endswith("06:36:07+00:00")
    live = naming.ownership_tags("r", 1)
    assert datetime.fromisoformat(live[naming.TAG_CREATED]).tzinfo is not None
    with pytest.raises(ConfigError):
        naming.ownership_tags("r", -1)


def test_is_owned() -> None:
    assert naming.is_owned(naming.ownership_tags("r", 1, now=NOW))
    assert not naming.is_owned({})
    assert not naming.is_owned({naming.TAG_RUN_ID: ""})
    assert not naming.is_owned({"owner": "someone"})


def test_is_expired_by_expiry() -> None:
    tags = naming.ownership_tags("r", 6, now=NOW)
    assert not naming.is_expired(tags, now=NOW + timedelta(hours=5))
    assert not naming.is_expired(tags, now=NOW + timedelta(hours=6))
    assert naming.is_expired(tags, now=NOW + timedelta(hours=6, seconds=1))
    assert naming.is_expired(tags)  # NOW is long past


def test_is_expired_by_age() -> None:
    tags = naming.ownership_tags("r", 48, now=NOW)
    later = NOW + timedelta(hours=7)
    assert not naming.is_expired(tags, now=later)
    assert naming.is_expired(tags, now=later, older_than_h=6)
    assert not naming.is_expired(tags, now=later, older_than_h=8)


def test_timestamp_forms_and_doubt() -> None:
    zulu = {naming.TAG_EXPIRES: "2025-03-04T05:06:07Z"}
    naive = {naming.TAG_EXPIRES: "2025-03-04T05:06:07"}
    for tags in (zulu, naive):
        assert naming.is_expired(tags, now=NOW + timedelta(seconds=1))
        assert not naming.is_expired(tags, now=NOW)
    assert naming.is_expired(zulu, now=datetime(2025, 3, 4, 6, 0))  # naive now taken as UTC
    assert not naming.is_expired({naming.TAG_EXPIRES: "soon"}, now=NOW)
    assert not naming.is_expired({}, now=NOW, older_than_h=0)
    assert not naming.is_expired({naming.TAG_CREATED: "garbage"}, now=NOW, older_than_h=0)


@pytest.mark.parametrize(
    "name",
    ["abc", "harness-finetune-gpu", "gpu-a100-cluster", "A1b2C3", "x" * 24, "cpu-cluster-a1"],
)
def test_compute_names_azure_accepts(name: str) -> None:
    assert naming.compute_name_problems(name) == []


@pytest.mark.parametrize(
    "name, problem",
    [
        ("ab", "2 characters, not 3-24"),
        ("x" * 25, "25 characters"),
        ("1gpu", "does not start with a letter"),
        ("gpu_cluster", "other than letters, digits and '-'"),
        ("cpu-cluster-1", "last '-' is not followed by a letter"),  # microsoft/pipelines-azureml#19
        ("gpu-", "last '-' is not followed by a letter"),
        ("égpu", "does not start with a letter"),
    ],
)
def test_compute_names_azure_refuses_say_why(name: str, problem: str) -> None:
    assert any(problem in text for text in naming.compute_name_problems(name)), name


def test_a_bad_compute_name_is_refused_when_the_config_is_read() -> None:
    from harness import config

    with pytest.raises(
        ConfigError,
        match=r"--compute-name: not a valid Azure compute name "
        r"\(its last '-' is not followed by a letter\)",
    ):
        config.resolve(cli={"backend": "azure", "compute_name": "gpu-cluster-1"}, env={})
    assert config.resolve(cli={"compute_name": "gpu-a"}, env={}).compute_name == "gpu-a"
