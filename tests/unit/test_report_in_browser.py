"""report.html as a person sees it: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, which .ci/run installs) driven by selenium.

For a passed, a failed and an interrupted run: the verdict (and for a failure the first
failing test's message) is in the first viewport, nothing overflows horizontally, and every
image loads. Without a browser the tests skip, except in CI (``CI=true``), where a missing
browser is a failure: a check that could not run is not a pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.report import Recorder, build_report, read_events, write_report
from tests.support.run_events import Clock, full_run, recorder

VIEWPORT = (1280, 800)
LONG_WORD = "https://management.azure.com/" + "x" * 300  # a URL in a message: no break point


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    missing = "chromium" if not chromium else "chromedriver (chromium-driver)"
    reason = f"{missing} not installed: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}")
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def _failed(rec: Recorder) -> None:
    rec.record("stage_started", name="deployment")
    rec.record(
        "stage_ended", name="deployment", outcome="failed", error=f"DeploymentError: {LONG_WORD}"
    )
    rec.record(
        "test",
        nodeid="tests/e2e/test_workflow.py::test_deployment_takes_all_traffic",
        outcome="error",
        phase="setup",
        workflow=True,
        failure_class="service",
        crash=f"harness.errors.DeploymentError: {LONG_WORD}",
        message="Traceback (most recent call last):\n" + f"  deep frame {LONG_WORD}\n" * 60,
    )


def _report(tmp_path: Path, kind: str) -> tuple[dict[str, Any], Path]:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    full_run(clock, rec, stop_after=8 if kind == "interrupted" else None)
    if kind == "failed":
        _failed(rec)
    report = build_report(*read_events(rec.path))
    out = tmp_path / "out"
    write_report(report, out)
    return report, out / "report.html"


def _in_first_viewport(browser: Any, css: str) -> bool:
    return bool(
        browser.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "if (!e) return false; const r = e.getBoundingClientRect();"
            "return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;",
            css,
        )
    )


@pytest.mark.parametrize("kind", ["passed", "failed", "interrupted"])
def test_the_page_shows_the_verdict_first_fits_the_window_and_loads_its_images(
    browser: Any, tmp_path: Path, kind: str
) -> None:
    report, page = _report(tmp_path, kind)
    assert report["run"]["verdict"] == kind
    browser.get(page.as_uri())
    heading = browser.find_element("css selector", "h1").text
    assert heading.startswith(kind.upper()) and _in_first_viewport(browser, "h1")
    assert _in_first_viewport(browser, "p.why")
    if kind == "failed":
        first = browser.find_element("css selector", "h2 + table tr:nth-child(2)")
        assert "DeploymentError" in first.text and "deployment" in first.text  # the step
        assert _in_first_viewport(browser, "h2 + table tr:nth-child(2)")
        assert not browser.find_element("css selector", "details pre").is_displayed()  # folded
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{kind} page is {overflow}px wider than the window"
    images = browser.execute_script(
        "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"
    )
    assert images == [True, True]
    browser.save_screenshot(str(tmp_path / f"{kind}.png"))  # to look at when a check fails


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install -y chromium chromium-driver"):
        _browser_paths()
