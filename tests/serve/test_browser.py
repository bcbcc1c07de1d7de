"""End to end in headless Chromium: draw a digit, upload a file, see probabilities and maps.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` package
(``apt-get install -y chromium chromium-driver``; ``pip install selenium``); skipped with that
reason when they are missing. ``CNNKIT_UPDATE_SCREENSHOT=1`` also writes the README's
``docs/screenshot-serve.png``; ``CNNKIT_SERVE_RUN=RUN`` serves that run instead of a small
random-weight one (the README's picture uses LeNet-5 trained on MNIST).
"""
from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from _browser import headless_chromium, needs_chromium  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot-serve.png"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def served_run(run_dir):
    """The run to serve: ``CNNKIT_SERVE_RUN`` (for the README screenshot) or a random-weight one.

    The checks compare the page with the server's own answers, so untrained weights suffice.
    """
    return Path(os.environ["CNNKIT_SERVE_RUN"]) if os.environ.get("CNNKIT_SERVE_RUN") else run_dir


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(webdriver, "1280,860", extra_flags=("--disable-quic",)) as driver:
        yield driver


def _analysed(driver) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.analysed || 0)"))


def _wait_until_idle_after(driver, count: int) -> None:
    """Wait until the page has rendered more than ``count`` results and nothing is in flight."""
    WebDriverWait(driver, 30).until(lambda d: _analysed(d) > count and d.execute_script(
        "return document.body.dataset.busy === '0'"))


def _page_probabilities(driver) -> dict[str, float]:
    bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
    return {bar.get_attribute("data-cls"): float(bar.get_attribute("data-probability"))
            for bar in bars}


def _feature_maps_loaded(driver) -> int:
    """How many feature-map images are present and decoded (naturalWidth > 0)."""
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll('img.feature-map')];"
        "return imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.length : 0;")


def _server_probabilities(server, files=None, json=None) -> dict[str, float]:
    response = httpx.post(f"{server.url}/predict", params={"top_k": 1000}, files=files,
                          json=json, timeout=30)
    response.raise_for_status()
    return {p["class"]: p["probability"] for p in response.json()["predictions"]}


def _assert_same(page: dict, server: dict) -> None:
    assert page.keys() == server.keys()
    for name in page:
        assert page[name] == pytest.approx(server[name], abs=1e-5), name


def test_draw_and_upload_in_a_real_browser(served_run, make_live_server, browser, tmp_path):
    server = make_live_server(served_run)
    classes = httpx.get(f"{server.url}/model", timeout=30).json()["class_names"]
    browser.get(server.url + "/")
    _wait_until_idle_after(browser, 0)  # the blank pad is analysed once the model is known
    assert len(_page_probabilities(browser)) == len(classes)

    # Draw a "4" in one stroke: up the right stem, diagonally down-left, then across.
    before = _analysed(browser)
    pad = browser.find_element(By.ID, "pad")
    (ActionChains(browser).move_to_element_with_offset(pad, 30, 100).click_and_hold()
     .move_by_offset(0, -100).move_by_offset(0, -100).move_by_offset(-45, 65)
     .move_by_offset(-45, 65).move_by_offset(60, 0).move_by_offset(60, 0).release().perform())
    _wait_until_idle_after(browser, before)
    page = _page_probabilities(browser)
    assert sum(page.values()) == pytest.approx(1.0, abs=1e-4)
    drawing = browser.execute_script("return framedDrawing()")  # what the page sent
    _assert_same(page, _server_probabilities(server, json={"image": drawing}))
    assert browser.find_element(By.ID, "prediction").text == max(page, key=page.get)
    assert _feature_maps_loaded(browser) > 0
    layer_titles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".layer .title")]
    assert any("conv" in title for title in layer_titles)
    screenshot = tmp_path / "screenshot-serve.png"
    browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as picture:
        assert picture.size[0] >= 1000
    if os.environ.get("CNNKIT_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, SCREENSHOT)

    # Upload a digit file through the file input: the page shows the server's prediction.
    png_path = tmp_path / "digit.png"
    digit = Image.new("L", (64, 64))
    ImageDraw.Draw(digit).line([(32, 8), (32, 56)], fill=255, width=8)  # a "1"
    digit.save(png_path)
    before = _analysed(browser)
    browser.find_element(By.ID, "file").send_keys(str(png_path))
    _wait_until_idle_after(browser, before)
    expected = _server_probabilities(server, files={"file": ("digit.png", png_path.read_bytes(),
                                                             "image/png")})
    _assert_same(_page_probabilities(browser), expected)
    assert browser.find_element(By.ID, "prediction").text == max(expected, key=expected.get)
    shown = browser.find_element(By.ID, "model-input").get_attribute("src")
    model_input = Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1])))
    assert model_input.size == tuple(httpx.get(f"{server.url}/model").json()["input_shape"][:0:-1])
    assert _feature_maps_loaded(browser) > 0
