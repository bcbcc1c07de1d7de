"""``/predict`` of localise / segment / detect runs: boxes, masks and detections as JSON."""
from __future__ import annotations

import base64
import io
import os
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from cnnkit import run as rf
from cnnkit.run.task_predict import predict_task_images
from cnnkit.serve import ServeConfig, create_app

from _task_runs import CLASSES, write_task_run  # tests/_task_runs.py


@pytest.fixture(scope="module", params=["localize", "segment", "detect"])
def served(request, tmp_path_factory):
    """(task, run folder, TestClient) for one task run."""
    run = write_task_run(tmp_path_factory.mktemp(request.param) / "run", request.param)
    with TestClient(create_app(run)) as client:
        yield request.param, run, client


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _expected(run, image: np.ndarray) -> dict:
    """What cnnkit predict gives for the same (H, W) grey image."""
    return predict_task_images(rf.load_run(run), [torch.from_numpy(image)[None]])[0]


def _decode_png(text: str) -> Image.Image:
    picture = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
    assert picture.format == "PNG"
    return picture


def _check_result(task: str, run, image: np.ndarray, result: dict) -> None:
    height, width = image.shape
    expected = _expected(run, image)
    assert result["task"] == task
    if task == "localize":
        assert set(result) == {"task", "label", "probability", "box"}
        assert result["label"] == expected["label"] and result["label"] in CLASSES[task]
        assert result["probability"] == pytest.approx(expected["probability"], abs=1e-5)
        assert result["box"] == pytest.approx(expected["box"], abs=0.02)
        x0, y0, x1, y1 = result["box"]
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
    elif task == "segment":
        assert set(result) == {"task", "mask_png", "overlay_png", "areas"}
        mask = _decode_png(result["mask_png"])
        assert mask.mode == "L" and mask.size == (width, height)  # PIL sizes are (W, H)
        values = np.asarray(mask)
        assert values.max() < len(CLASSES[task])
        np.testing.assert_array_equal(values, expected["mask"].numpy())
        assert len(np.unique(values)) > 1  # the test image gets several classes
        overlay = _decode_png(result["overlay_png"])
        assert overlay.mode == "RGB" and overlay.size == (width, height)
        assert set(result["areas"]) <= set(CLASSES[task])
        assert sum(result["areas"].values()) == pytest.approx(1.0)
        assert result["areas"] == pytest.approx(expected["areas"])
    else:
        assert set(result) == {"task", "detections"}
        assert [d["label"] for d in result["detections"]] == \
            [d["label"] for d in expected["detections"]]
        assert result["detections"]  # the random weights give detections to compare
        for got, want in zip(result["detections"], expected["detections"]):
            assert set(got) == {"label", "score", "box"}
            assert got["score"] == pytest.approx(want["score"], abs=1e-5)
            assert got["box"] == pytest.approx(want["box"], abs=0.02)


def test_an_upload_is_answered_in_its_own_pixels(served):
    task, run, client = served
    image = _image(40, 50)
    response = client.post("/predict", files={"file": ("x.png", _png(image), "image/png")})
    assert response.status_code == 200, response.text
    _check_result(task, run, image, response.json())


def test_a_batch_of_images_of_different_sizes(served):
    task, run, client = served
    images = [_image(37, 45, seed=1), _image(32, 32, seed=2)]
    body = {"images": [{"image": base64.b64encode(_png(images[0])).decode()},
                       {"pixels": images[1].tolist()}]}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2
    for image, result in zip(images, results):
        _check_result(task, run, image, result)


def test_bad_uploads_and_features_are_clear_4xx(served):
    _, _, client = served
    response = client.post("/predict", files={"file": ("x.png", b"not an image", "image/png")})
    assert response.status_code == 400 and response.json()["error"] == "not_an_image"
    truncated = _png(_image(20, 20))[:40]
    response = client.post("/predict", content=truncated, headers={"content-type": "image/png"})
    assert response.status_code == 422 and response.json()["error"] == "corrupt_image"
    response = client.post("/features", json={"pixels": _image(32, 32).tolist()})
    assert response.status_code == 400 and response.json()["error"] == "not_a_classifier"
    assert client.get("/health").json()["status"] == "ok"


def test_model_info_names_the_task_and_the_page_handles_it(served):
    task, _, client = served
    info = client.get("/model").json()
    # "auto": the run's in-graph-decoding ONNX export in onnxruntime (the test extra has it)
    assert info["task"] == task and info["backend"] == "onnxruntime"
    assert info["class_names"] == CLASSES[task]
    script = client.get("/static/app.js").text
    assert "renderTask" in script and "overlay_png" in script and "detections" in script


@pytest.mark.parametrize("task", ["localize", "segment", "detect"])
def test_torch_and_onnxruntime_backends_answer_alike(tmp_path, task):
    run = write_task_run(tmp_path / "run", task)
    image = _image(37, 45, seed=3)
    answers = {}
    for backend in ("torch", "onnxruntime"):
        with TestClient(create_app(run, ServeConfig(backend=backend))) as client:
            assert client.get("/model").json()["backend"] == backend
            response = client.post("/predict", files={"file": ("x.png", _png(image),
                                                                "image/png")})
            assert response.status_code == 200, response.text
            answers[backend] = response.json()
        _check_result(task, run, image, answers[backend])  # each equals cnnkit predict's
    assert answers["torch"].keys() == answers["onnxruntime"].keys()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through selenium, or skip with the reason (as tests/serve/test_browser)."""
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.access(chromium, os.X_OK) and os.access(chromedriver, os.X_OK)):
        pytest.skip(f"headless Chromium not found ({chromium}, {chromedriver}); install it with "
                    "apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--window-size=1280,860"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=chromedriver))
    yield driver
    driver.quit()


def test_the_page_draws_the_answer_on_the_upload(served, make_live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    task, run, _ = served
    driver = browser
    server = make_live_server(run)
    driver.get(server.url + "/")

    def analysed(d) -> int:
        return int(d.execute_script("return Number(document.body.dataset.analysed || 0)"))

    WebDriverWait(driver, 30).until(lambda d: analysed(d) > 0)  # the blank pad, once
    assert driver.execute_script("return document.body.dataset.task") == task
    assert not driver.find_element(By.ID, "maps-panel").is_displayed()
    assert not driver.find_element(By.ID, "bars").is_displayed()
    image = _image(60, 90, seed=5)
    path = tmp_path / "upload.png"
    path.write_bytes(_png(image))
    before = analysed(driver)
    driver.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(driver, 30).until(lambda d: analysed(d) > before and d.execute_script(
        "return document.body.dataset.busy === '0'"))
    answer = _expected(run, image)
    prediction = driver.find_element(By.ID, "prediction").text
    result = driver.find_element(By.ID, "result")
    overlay = driver.find_element(By.ID, "overlay")
    if task == "segment":
        assert overlay.is_displayed() and not result.is_displayed()
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(
            "const o = document.getElementById('overlay'); "
            "return o.complete && o.naturalWidth === 90 && o.naturalHeight === 60"))
        top = max(answer["areas"], key=answer["areas"].get)
        assert prediction == top
    else:
        assert result.is_displayed() and not overlay.is_displayed()
        # The 90x60 upload is drawn fitted into 280x280: 280 wide, 187 high.
        assert (int(result.get_attribute("width")), int(result.get_attribute("height"))) \
            == (280, 187)
        # The upload is grey, so coloured pixels are the drawn boxes and labels.
        coloured = driver.execute_script(
            "const c = document.getElementById('result');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1]) n++;"
            "return n;")
        if task == "localize":
            assert prediction.startswith(answer["label"] + " ") and coloured > 0
        else:
            count = len(answer["detections"])
            assert prediction == f"{count} object" + ("" if count == 1 else "s")
            assert count > 0 and coloured > 0
    details = driver.find_elements(By.CSS_SELECTOR, "#task-details li")
    assert details and driver.find_element(By.ID, "error").text == ""
