"""The scrubber on the secrets a run against the fake does not show: OAuth token requests,
storage keys, SAS URLs in bodies, and a secret learnt in one exchange and met again in another.
(tests/unit/test_record_replay.py proves a whole recorded run keeps none of its secrets.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from harness import config
from harness.backends.azure.recording import TrafficRecorder
from harness.backends.azure.scrubbing import (
    SUBSCRIPTION_PLACEHOLDER,
    TENANT_PLACEHOLDER,
    USER_PLACEHOLDER,
    Scrubber,
)
from harness.errors import ConfigError

TENANT = "7c2b4a1f-3d5e-4f60-9b8c-1d2e3f4a5b6c"
SUB = "6b1a3f0e-2c4d-4e5f-8a9b-0c1d2e3f4a5b"


def jwt(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_a_token_request_and_its_answer_keep_no_secret() -> None:
    scrub = Scrubber()
    form = b"grant_type=client_credentials&client_id=abc&client_secret=Zx8~secret.Value9&scope=x"
    assert b"Zx8~secret" not in scrub.body(form)
    token = jwt({"tid": TENANT, "upn": "ada@contoso.example"})
    answer = scrub.body(json.dumps({"access_token": token, "expires_in": 3599}).encode())
    assert token.encode() not in answer and b"3599" in answer
    later = scrub.text(
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token ada@contoso.example"
    )
    assert TENANT not in later and TENANT_PLACEHOLDER in later and USER_PLACEHOLDER in later


def test_storage_keys_and_sas_urls_are_scrubbed_wherever_they_are() -> None:
    scrub = Scrubber()
    key = "q1W2e3R4t5Y6u7I8o9P0aSdFgHjKl=="
    conn = f"DefaultEndpointsProtocol=https;AccountName=st;AccountKey={key};EndpointSuffix=x"
    assert key not in scrub.text(conn)
    secrets = scrub.body(json.dumps({"secretsType": "AccountKey", "key": key}).encode())
    assert key.encode() not in secrets and b"AccountKey" in secrets
    sas = "https://st.blob.core.windows.net/c/f?sv=2023&skoid=o1d&sig=Abc123%2Bdef%3D&se=2026"
    scrubbed = scrub.text(sas)
    assert "Abc123" not in scrubbed and "sv=2023" in scrubbed and "se=2026" in scrubbed
    headers = scrub.headers({"Authorization": [f"SharedKey st:{key}"], "x-ms-version": ["1"]})
    assert key not in json.dumps(headers) and headers["x-ms-version"] == ["1"]


def test_a_secret_learnt_once_is_replaced_wherever_it_appears_later() -> None:
    scrub = Scrubber()
    scrub.body(
        json.dumps({"primaryKey": "K3y-abc123DEF456", "secondaryKey": "K3y-zyx987"}).encode()
    )
    assert "K3y-abc123DEF456" not in scrub.text("echo K3y-abc123DEF456 in a log line")


def test_ids_get_one_stable_placeholder_each_and_words_stay() -> None:
    scrub = Scrubber()
    scrub.add_id("subscription", SUB)
    url = scrub.text(f"/subscriptions/{SUB}/x /subscriptions/{SUB.upper()}/y")
    assert url == f"/subscriptions/{SUB_PLACEHOLDER}/x /subscriptions/{SUB_PLACEHOLDER}/y"
    other = scrub.text("/subscriptions/11111111-2222-4333-8444-555555555555/z")
    assert other == "/subscriptions/00000000-0000-4000-8000-000000000001/z"
    metrics = {"metrics": [{"key": "train_loss", "value": 1.5}], "tags": [{"key": "mlflow.user"}]}
    assert json.loads(scrub.body(json.dumps(metrics).encode())) == metrics


SUB_PLACEHOLDER = SUBSCRIPTION_PLACEHOLDER


def test_a_scrubbed_conversation_scrubbed_again_stays_the_same() -> None:
    """Placeholders are never renumbered: the unit suite checks each committed cassette by
    scrubbing it once more (tests/unit/test_cassettes.py)."""
    once = Scrubber().text(f"/subscriptions/{SUB}/x /subscriptions/{TENANT}/y")
    assert once.endswith(f"{SUBSCRIPTION_PLACEHOLDER[:-1]}1/y")
    assert Scrubber().text(once) == once
    more = Scrubber().text(f"{once} /subscriptions/11111111-2222-4333-8444-555555555555/z")
    assert more == f"{once} /subscriptions/{SUBSCRIPTION_PLACEHOLDER[:-1]}2/z"


def test_the_cassette_is_private_and_scrubbed_again_on_save(tmp_path: Path) -> None:
    recorder = TrafficRecorder(tmp_path / "c" / "run-main.yaml", {"format": 1})
    recorder.interactions.append({"request": {"uri": "K3y-learnt-late-99"}, "response": {}})
    recorder.scrubber.add_secrets(["K3y-learnt-late-99"])
    path = recorder.save()
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"K3y-learnt-late-99" not in path.read_bytes()


def test_record_traffic_needs_the_azure_backend_and_a_directory(tmp_path: Path) -> None:
    local = config.resolve(cli={"record_traffic": str(tmp_path)}, env={}, ini={})
    with pytest.raises(ConfigError, match="--record-traffic records the Azure conversation"):
        config.check_record_traffic(local)
    (tmp_path / "file").write_text("")
    on_file = config.resolve(
        cli={"backend": "azure", "record_traffic": str(tmp_path / "file")}, env={}, ini={}
    )
    with pytest.raises(ConfigError, match="is a file; pass a directory"):
        config.check_record_traffic(on_file)
    from_env = config.resolve(
        cli={"backend": "azure"}, env={"HARNESS_RECORD_TRAFFIC": str(tmp_path)}, ini={}
    )
    assert from_env.record_traffic == tmp_path.resolve()
    assert from_env.sources["record_traffic"] == "env HARNESS_RECORD_TRAFFIC"
