"""The HTTP API: predictions equal cnnkit.load's, bad input is a 4xx JSON, the server goes on."""
import asyncio
import base64
import io
import tracemalloc

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.serve import BatchConfig, ServeConfig, ServeLimits, create_app


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)


def _expected(run_dir, images) -> np.ndarray:
    return cnnkit.load(run_dir).predict_proba(torch.from_numpy(np.stack(images))).numpy()


def _probs(result) -> dict[str, float]:
    return {p["class"]: p["probability"] for p in result["predictions"]}


def test_health_model_and_openapi(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["class_names"] == [str(k) for k in range(10)]
    assert info["input_shape"] == [1, 8, 8] and info["input"] == "8x8x1"
    assert info["normalization"] == {"mean": [0.3], "std": [0.4]}
    assert "conv" in info["summary"].lower() and info["parameters"] > 0
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/features", "/health", "/model"} <= set(paths)
    assert "multipart/form-data" in paths["/predict"]["post"]["requestBody"]["content"]


def test_every_input_form_gives_load_runs_probabilities(client, run_dir):
    pixels = _pixels()
    expected = _expected(run_dir, [pixels[None]])[0]
    png = _png(pixels)
    responses = [
        client.post("/predict", files={"file": ("x.png", png, "image/png")}, params={"top_k": 10}),
        client.post("/predict", content=png, headers={"content-type": "image/png"},
                    params={"top_k": 10}),
        client.post("/predict", json={"image": base64.b64encode(png).decode()},
                    params={"top_k": 10}),
        client.post("/predict", json={"pixels": pixels.tolist()}, params={"top_k": 10}),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        probs = _probs(response.json())
        np.testing.assert_allclose([probs[str(k)] for k in range(10)], expected, rtol=1e-5,
                                   atol=1e-6)


def test_top_k_is_sorted_and_defaults_to_five(client):
    result = client.post("/predict", json={"pixels": _pixels().tolist()}).json()
    probabilities = [p["probability"] for p in result["predictions"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert client.post("/predict", json={"pixels": _pixels().tolist()},
                       params={"top_k": 0}).status_code == 422


def test_batch_requests_return_one_result_per_image(client, run_dir):
    images = [_pixels(seed) for seed in range(5)]
    expected = _expected(run_dir, [image[None] for image in images])
    json_batch = client.post("/predict", params={"top_k": 1}, json={"images": [
        {"pixels": image.tolist()} for image in images]}).json()["results"]
    files = [("file", (f"{k}.png", _png(image), "image/png")) for k, image in enumerate(images)]
    multipart = client.post("/predict", files=files, params={"top_k": 1}).json()["results"]
    for results in (json_batch, multipart):
        assert [r["predictions"][0]["class"] for r in results] == \
            [str(k) for k in expected.argmax(1)]


BAD_REQUESTS = [
    ("not an image", dict(files={"file": ("x.png", b"hello", "image/png")}), 400, "not_an_image"),
    ("truncated PNG", dict(content=_png(_pixels())[:40], headers={"content-type": "image/png"}),
     422, "corrupt_image"),
    ("wrong pixel shape", dict(json={"pixels": [[0] * 7] * 8}), 422, "wrong_pixel_shape"),
    ("oversized body", dict(content=b"\0" * 5000, headers={"content-type": "image/png"}),
     413, "body_too_large"),
    ("too many pixels", dict(content=_png(np.zeros((40, 30), np.uint8)),
                             headers={"content-type": "image/png"}), 413, "image_too_large"),
    ("empty body", dict(content=b"", headers={"content-type": "image/png"}), 400, "empty_body"),
    ("wrong content type", dict(content=b"abc", headers={"content-type": "text/plain"}),
     415, "unsupported_media_type"),
    ("no content type", dict(content=b"abc"), 415, "unsupported_media_type"),
    ("bad JSON", dict(content=b"{", headers={"content-type": "application/json"}), 400,
     "bad_json"),
    ("multipart without file", dict(files={"other": ("x", b"1")}), 400, "no_file"),
    ("too many images", dict(json={"images": [{"pixels": [[0] * 8] * 8}] * 4}), 413,
     "too_many_images"),
]


@pytest.fixture(scope="module")
def small_limits_client(run_dir):
    from fastapi.testclient import TestClient

    config = ServeConfig(limits=ServeLimits(max_upload_bytes=4096, max_pixels=1000, max_images=3))
    with TestClient(create_app(run_dir, config)) as test_client:
        yield test_client


@pytest.mark.parametrize("name, request_kwargs, status, code", BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_is_a_4xx_json_and_the_server_keeps_serving(small_limits_client, name,
                                                              request_kwargs, status, code):
    response = small_limits_client.post("/predict", **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["detail"], body
    ok = small_limits_client.post("/predict", json={"pixels": _pixels().tolist()})
    assert ok.status_code == 200


def test_chunked_upload_over_the_limit_is_413(small_limits_client):
    def chunks():
        for _ in range(10):
            yield b"\0" * 1000  # no Content-Length: the limit applies while reading

    response = small_limits_client.post("/predict", content=chunks(),
                                        headers={"content-type": "image/png"})
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


def test_unknown_path_and_method_are_json(client):
    assert client.get("/nope").json()["error"] == "not_found"
    assert client.get("/predict").status_code == 405


def test_bad_requests_do_not_leak_memory(small_limits_client):
    bad = [kwargs for _, kwargs, _, _ in BAD_REQUESTS]
    for kwargs in bad * 3:  # warm-up: caches, lazily created objects
        small_limits_client.post("/predict", **kwargs)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for kwargs in bad * 20:
            small_limits_client.post("/predict", **kwargs)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 512 * 1024, f"{growth} bytes kept after {len(bad) * 20} bad requests"


def test_features_for_the_page(client, run_dir):
    pixels = _pixels()
    result = client.post("/features", json={"pixels": pixels.tolist()}).json()
    np.testing.assert_allclose(result["probabilities"], _expected(run_dir, [pixels[None]])[0],
                               rtol=1e-5, atol=1e-6)
    assert [layer["kind"] for layer in result["layers"]] == \
        ["conv", "activation", "pool", "conv", "activation"]
    assert result["layers"][0]["shape"] == [4, 8, 8] and len(result["layers"][0]["maps"]) == 4
    first = Image.open(io.BytesIO(base64.b64decode(result["layers"][0]["maps"][0])))
    assert first.size == (8, 8) and first.mode == "L"
    model_input = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["input"]))))
    np.testing.assert_array_equal(model_input, pixels)
    batch = client.post("/features", json={"images": [{"pixels": pixels.tolist()}] * 2})
    assert batch.status_code == 400 and batch.json()["error"] == "batch_not_supported"


def test_feature_channels_are_capped(run_dir):
    from fastapi.testclient import TestClient

    with TestClient(create_app(run_dir, ServeConfig(max_feature_channels=2,
                                                    max_feature_layers=3))) as small:
        layers = small.post("/features", json={"pixels": _pixels().tolist()}).json()["layers"]
    assert len(layers) == 3 and all(len(layer["maps"]) == 2 for layer in layers)


def test_concurrent_http_requests_share_forward_passes(run_dir):
    app = create_app(run_dir, ServeConfig(batch=BatchConfig(max_batch=64, max_wait_ms=200)))
    images = [_pixels(seed) for seed in range(16)]

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                responses = await asyncio.gather(*(
                    http.post("/predict", json={"pixels": image.tolist()}, params={"top_k": 10})
                    for image in images))
                health = (await http.get("/health")).json()
        return responses, health

    responses, health = asyncio.run(main())
    expected = _expected(run_dir, [image[None] for image in images])
    for response, want in zip(responses, expected):
        probs = _probs(response.json())
        np.testing.assert_allclose([probs[str(k)] for k in range(10)], want, rtol=1e-5,
                                   atol=1e-6)
    assert health["images"] == 16 and health["batches"] < 16


def test_request_timeout_is_504(run_dir):
    from fastapi.testclient import TestClient

    app = create_app(run_dir, ServeConfig(batch=BatchConfig(timeout_s=1e-6)))
    with TestClient(app) as slow:
        response = slow.post("/predict", json={"pixels": _pixels().tolist()})
    assert response.status_code == 504 and response.json()["error"] == "timeout"


def _decoded_maps(layer) -> np.ndarray:
    """A /features layer's PNGs -> uint8 (C'', H, W)."""
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))
                     for png in layer["maps"]])


def test_concurrent_features_share_passes_and_equal_a_direct_model_call(run_dir):
    from cnnkit.inspect.feature_maps import feature_maps
    from cnnkit.serve.features import scale_to_uint8

    app = create_app(run_dir, ServeConfig(feature_max_wait_ms=200, feature_max_batch=4))
    images = [_pixels(seed) for seed in range(10)]

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                responses = await asyncio.gather(*(
                    http.post("/features", json={"pixels": image.tolist()}) for image in images))
                health = (await http.get("/health")).json()
        return responses, health

    responses, health = asyncio.run(main())
    assert health["features"]["images"] == 10 and health["features"]["batches"] < 10
    loaded = cnnkit.load(run_dir)
    expected = _expected(run_dir, [image[None] for image in images])
    for image, response, want in zip(images, responses, expected):
        assert response.status_code == 200, response.text
        result = response.json()
        np.testing.assert_allclose(result["probabilities"], want, rtol=1e-5, atol=1e-6)
        x = loaded.normalization.apply(torch.from_numpy(image[None]))  # (1, H, W) float
        direct = feature_maps(loaded.model, x)  # the unbatched maps of one image
        assert [(layer["name"], layer["kind"], layer["shape"]) for layer in result["layers"]] == \
            [(m.name, m.kind, list(m.maps.shape)) for m in direct]
        for layer, recorded in zip(result["layers"], direct):
            want_maps = scale_to_uint8(recorded.maps[:8]).astype(int)
            # Batched and single convolutions may round differently in the last float bit;
            # after scaling to 0-255 that is at most one grey level.
            assert np.abs(_decoded_maps(layer).astype(int) - want_maps).max() <= 1


def test_features_time_out_and_overload_like_predict(run_dir):
    from fastapi.testclient import TestClient

    app = create_app(run_dir, ServeConfig(batch=BatchConfig(timeout_s=1e-6)))
    with TestClient(app) as slow:
        response = slow.post("/features", json={"pixels": _pixels().tolist()})
    assert response.status_code == 504 and response.json()["error"] == "timeout"
