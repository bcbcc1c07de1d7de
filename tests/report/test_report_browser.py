"""The report page in headless Chromium: it renders, every picture loads, no console errors.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` package
(``apt-get install -y chromium chromium-driver``; ``pip install selenium``); skipped with that
reason when they are missing. ``CNNKIT_UPDATE_SCREENSHOT=1`` also writes the README's
``docs/report.png``; ``CNNKIT_REPORT_RUN=RUN`` reports on that run instead of the tiny digits one
(the README's picture uses a small MNIST run).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.by import By  # noqa: E402

from _browser import headless_chromium, needs_chromium  # noqa: E402

from cnnkit.report import write_report  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report.png"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def report_page(digits_run, tmp_path_factory):
    """The report of ``CNNKIT_REPORT_RUN`` (for the README screenshot) or of the digits run."""
    chosen = os.environ.get("CNNKIT_REPORT_RUN")
    run = Path(chosen) if chosen else digits_run
    return write_report(run, tmp_path_factory.mktemp("page") / "report.html")


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(webdriver, "1100,1400", console_logs=True) as driver:
        yield driver


def test_the_report_renders_with_every_image_loaded(report_page, browser, tmp_path):
    browser.get(report_page.resolve().as_uri())
    assert browser.title.startswith("Run report: ")
    sections = [s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")]
    assert {"config", "summary", "curves", "confusion", "per-class", "mistakes", "filters",
            "feature-maps"} <= set(sections)
    images = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(images) >= 5
    assert all(done and width > 0 and height > 0 for done, width, height in images), images
    # Each picture is laid out on the page (not collapsed to zero size by the CSS).
    shown = browser.execute_script(
        "return [...document.images].map(i => i.getBoundingClientRect().width);")
    assert all(width > 100 for width in shown), shown
    problems = [entry for entry in browser.get_log("browser") if entry["level"] != "INFO"]
    assert problems == []
    # The screenshot shows the pictures: the final metrics, the curves and the evaluation.
    browser.execute_script("document.getElementById('results').scrollIntoView()")
    screenshot = tmp_path / "report.png"
    browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as picture:
        assert picture.size[0] >= 1000
    if os.environ.get("CNNKIT_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, SCREENSHOT)
