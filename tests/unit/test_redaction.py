"""Secrets never reach a report: secret-named fields lose their values, SAS URLs their query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.redaction import REDACTED, is_secret_key, redact, redact_text
from harness.report import Recorder, build_report, read_events
from harness.report.markdown import render_markdown
from harness.report.webpage import render_html
from tests.support.run_events import Clock, full_run, recorder

SAS = (
    "https://acct.blob.core.windows.net/c/model.bin?sv=2024-11-04&se=2026-12-01T00%3A00Z"
    "&sr=b&sp=r&sig=AbCdEf0123456789%2Bxyz%3D"
)
ENDPOINT_KEY = "kq9Z3vRw81LmN0pXyT4sUb7c"


@pytest.mark.parametrize(
    "name",
    [
        "key",
        "primaryKey",
        "endpoint_key",
        "api-key",
        "keys",
        "access_token",
        "SASToken",
        "sas_url",
        "client_secret",
        "password",
        "Authorization",
        "AccountKey",
        "credentials",
    ],
)
def test_secret_field_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_new_tokens",
        "tokenizer",
        "keep_resources",
        "auth_mode",
        "monkey",
        "model_id",
        "scoring_uri",
        "instance_type",
        "mean_token_accuracy",
        "key_vault_id",
        "num_tokens",
    ],
)
def test_ordinary_field_names(name: str) -> None:
    assert not is_secret_key(name)


def test_nested_secret_fields_lose_their_values_and_keep_their_names() -> None:
    value = {
        "auth_mode": "key",
        "keys": ["a" * 20, "b" * 20],
        "nested": [{"token": "t0k3n-value", "max_new_tokens": 200}],
    }
    assert redact(value) == {
        "auth_mode": "key",
        "keys": REDACTED,
        "nested": [{"token": REDACTED, "max_new_tokens": 200}],
    }


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        (f"download failed: {SAS} (403)", "sig=AbCd"),
        (f"download failed: {SAS} (403)", "sv=2024"),
        ("sent Authorization: Bearer eyJhbGciOi.abc.def to the endpoint", "eyJhbGciOi"),
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0Cg==;", "c2VjcmV0"),
        ('{"api_key": "abc123secret"}', "abc123secret"),
        ("?sig=onlythesignature&x=1", "onlythesignature"),
    ],
)
def test_secret_shapes_are_cut_out_of_text(text: str, gone: str) -> None:
    cleaned = redact_text(text)
    assert gone not in cleaned and REDACTED in cleaned


def test_a_sas_url_keeps_its_host_and_path() -> None:
    assert redact_text(SAS) == f"https://acct.blob.core.windows.net/c/model.bin?{REDACTED}"


def test_known_secrets_are_replaced_wherever_they_appear(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "e.jsonl")
    rec.add_secret(ENDPOINT_KEY)
    rec.record(
        "test",
        nodeid="t::keys",
        outcome="failed",
        message=f"401 for key {ENDPOINT_KEY[:4]}... full {ENDPOINT_KEY}",
    )
    assert ENDPOINT_KEY not in rec.path.read_text()


def test_no_secret_reaches_any_report_file(tmp_path: Path) -> None:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    rec.add_secret(ENDPOINT_KEY)
    full_run(clock, rec, stop_after=-1)
    rec.record("endpoint", name="ep-abc", keys=[ENDPOINT_KEY], primary_key=ENDPOINT_KEY)
    rec.record("job", name="ft-abc", status="Completed", url=SAS)
    rec.record("note", text=f"model artifacts at {SAS}")
    rec.record("sample", prompt="p", status="error", error=f"key {ENDPOINT_KEY} rejected")
    rec.record("run_ended", exit_status=1)
    report = build_report(*read_events(rec.path))
    # the plots draw only the run id, model and stage names: the text files are what to check
    texts = {
        "events": rec.path.read_text(),
        "report.json": json.dumps(report),
        "report.md": render_markdown(report),
        "report.html": render_html(report, {}),
    }
    for name, content in texts.items():
        assert ENDPOINT_KEY not in content and "sig=AbCd" not in content, name
    assert "ep-abc" in texts["report.html"] and REDACTED in texts["report.json"]
