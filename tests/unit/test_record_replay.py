"""``--record-traffic`` and ``python -m harness replay``, proven with the Azure fake.

A cassette recorded from the fake proves the recorder and the replayer only (the fake's shapes
are ours); the cassettes built from the Azure SDK's public recordings prove the backend against
real traffic (tests/unit/test_cassettes.py).
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from harness import replay
from harness.replay import request_key
from tests.support.azure_fake import FakeAzureML
from tests.unit.test_azure_suite import E2E, imported_before_the_snapshot, isolated, run_suite

__all__ = ["imported_before_the_snapshot"]
pytestmark = pytest.mark.usefixtures("imported_before_the_snapshot", "plots_drawn_elsewhere")

SUBSCRIPTION = "6b1a3f0e-2c4d-4e5f-8a9b-0c1d2e3f4a5b"
TENANT = "7c2b4a1f-3d5e-4f60-9b8c-1d2e3f4a5b6c"
UPN = "night.owl@contoso.example"
ENDPOINT_KEY = "K3yPrimary-0123456789abcdefXYZ"
SAS_SIG = "Zm9vYmFyc2lnbmF0dXJlX3NlY3JldA%3D%3D"
SAS_OID = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
CLIENT_SECRET = "cl1ent~S3cret.value_for_the_test"


class ClaimsCredential:
    """Tokens carrying a tenant id and a user principal name, as Entra ID's do."""

    def get_token(self, *scopes: str, **kwargs: object) -> object:
        import time

        import jwt
        from azure.core.credentials import AccessToken

        audience = scopes[0].removesuffix("/.default") if scopes else ""
        expires = int(time.time()) + 3600
        claims = {"aud": audience, "exp": expires, "tid": TENANT, "upn": UPN}
        return AccessToken(jwt.encode(claims, "k" * 32, algorithm="HS256"), expires)


def with_secrets(fake: FakeAzureML) -> None:
    """Known secret values in the answers the recorder must scrub."""
    sas = f"sv=2023-01-03&skoid={SAS_OID}&sktid={TENANT}&sig={SAS_SIG}"
    fake.router.inject("datastore.secrets", 200, {"secretsType": "Sas", "sasToken": sas}, times=50)


def record(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setattr("tests.support.azure_fake.FakeCredential", ClaimsCredential)
    monkeypatch.setattr("tests.support.azure_fake.endpoints.ENDPOINT_KEY", ENDPOINT_KEY)
    result, plugin = run_suite(
        pytester,
        "--model-name",
        "Phi-4",
        "--azure-subscription-id",
        SUBSCRIPTION,
        f"--record-traffic={folder}",
        "--run-id",
        "hrec0001",
        script=with_secrets,
    )
    result.assert_outcomes(passed=12, skipped=2)
    assert plugin.fake is not None
    return None


def test_a_run_recorded_against_the_fake_keeps_no_secret_and_replays_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorded = tmp_path / "cassettes"
    record(pytester, monkeypatch, recorded)
    secrets_scrubbed(recorded)
    replayed(recorded, pytester)


def secrets_scrubbed(recorded: Path) -> None:
    (cassette,) = recorded.glob("*.yaml")
    assert cassette.name == "hrec0001-main.yaml"
    assert stat.S_IMODE(cassette.stat().st_mode) == 0o600
    data = cassette.read_bytes()
    for secret in (SUBSCRIPTION, TENANT, UPN, ENDPOINT_KEY, SAS_SIG, SAS_OID, CLIENT_SECRET):
        assert secret.encode() not in data, secret
        assert secret.lower().encode() not in data, secret
    assert b"eyJ" not in data, "no token survives"
    loaded = yaml.safe_load(data)
    interactions = loaded["interactions"]
    assert len(interactions) > 50
    methods = {i["request"]["method"] for i in interactions}
    assert {"GET", "PUT", "POST", "DELETE"} <= methods
    hosts = {i["request"]["uri"].split("/")[2] for i in interactions}
    assert "management.azure.com" in hosts
    assert any(h.endswith(".inference.ml.azure.com") for h in hosts), "scoring is recorded"
    meta = loaded["metadata"]["harness"]
    assert meta["run_id"] == "hrec0001" and meta["model_name"] == "Phi-4"
    assert meta["settings"]["azure_subscription_id"] == "00000000-0000-4000-8000-000000000000"
    timing = [i["response"]["harness"] for i in interactions]
    assert [t["seq"] for t in timing] == list(range(len(timing)))
    assert all(t["elapsed_s"] >= 0 for t in timing)


def replayed(recorded: Path, pytester: pytest.Pytester, run_id: str = "hrec0001") -> None:
    """The e2e suite (copied in when missing) replayed against ``recorded``: it passes and asks
    for every recorded answer."""
    suite = pytester.path / "e2e"
    if not suite.exists():
        suite.mkdir()
        shutil.copy(E2E / "conftest.py", suite / "conftest.py")
        shutil.copy(E2E / "test_workflow.py", suite / "test_azure_copy.py")
    recording = replay.load(recorded)
    plugin = replay.ReplayPlugin(recording)
    report = pytester.path / "replay-report"
    args = replay.pytest_args(recording, pytester.path / "e2e", report)
    result = pytester.runpytest_inprocess(*isolated(pytester), *args, plugins=[plugin])
    assert result.ret == pytest.ExitCode.OK, plugin.summary()
    assert plugin.player.first_unanswered is None
    assert not extra_polls_aside(plugin.player), "every answer was asked for"
    outcome = json.loads((report / "report.json").read_text())
    assert outcome["run"]["verdict"] == "passed"
    assert outcome["run"]["id"] == run_id, "the recorded run id is reused"


def extra_polls_aside(player: replay.Player) -> list[str]:
    """The recorded exchanges the replay never asked for, but for extra copies of a GET it did
    ask for: a run recorded on a loaded machine polls an LRO or an endpoint once more than a
    replay, which answers at once (a timing-dependent poll count, which must not break it)."""
    exchanges = player.recording.exchanges
    keys = [request_key(r.method, r.uri, player.match_api_version) for r, _, _ in exchanges]
    asked = {keys[i] for i in player.played}
    return [
        where
        for i, (request, _, where) in enumerate(exchanges)
        if i not in player.played
        and not (request.method.upper() in replay.SAFE_METHODS and keys[i] in asked)
    ]
