"""Request decoding: images and pixel arrays become the model's uint8 (C, H, W), or a 4xx."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.folder import decode_image
from cnnkit.serve.decode import (RequestError, ServeLimits, decode_base64, decode_image_bytes,
                                 decode_json_body, decode_pixels)

LIMITS = ServeLimits()


def _encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _rgb(h=30, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 12)])
def test_uploads_follow_the_image_folder_resize_rule(tmp_path, fmt, shape):
    data = _encode(_rgb(), fmt)
    (tmp_path / f"x.{fmt.lower()}").write_bytes(data)
    expected = decode_image(tmp_path / f"x.{fmt.lower()}", channels=shape[0], size=shape[1:])
    got = decode_image_bytes(data, shape, LIMITS)
    assert got.shape == shape and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_base64_and_data_url_decode_the_same_image():
    data = _encode(_rgb())
    plain = decode_base64(base64.b64encode(data).decode(), LIMITS, (1, 8, 8))
    url = decode_base64("data:image/png;base64," + base64.b64encode(data).decode(), LIMITS,
                        (1, 8, 8))
    np.testing.assert_array_equal(plain, url)


@pytest.mark.parametrize("data, status, code", [
    (b"", 400, "empty_image"),
    (b"hello, not an image", 400, "not_an_image"),
    (_encode(_rgb(64, 64))[:100], 422, "corrupt_image"),
    (_encode(_rgb(64, 64), "JPEG")[:300], 422, "corrupt_image"),
])
def test_bad_files_are_4xx(data, status, code):
    with pytest.raises(RequestError) as info:
        decode_image_bytes(data, (1, 8, 8), LIMITS)
    assert (info.value.status, info.value.error) == (status, code)


def test_pixel_limit_is_checked_from_the_header():
    data = _encode(np.zeros((50, 40), np.uint8))
    with pytest.raises(RequestError, match="50 = 2000 pixels") as info:
        decode_image_bytes(data, (1, 8, 8), ServeLimits(max_pixels=1999))
    assert info.value.status == 413
    assert decode_image_bytes(data, (1, 8, 8), ServeLimits(max_pixels=2000)).shape == (1, 8, 8)


def test_pixel_arrays_in_every_accepted_layout():
    chw = np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256
    np.testing.assert_array_equal(decode_pixels(chw.tolist(), (3, 4, 5)), chw)
    np.testing.assert_array_equal(decode_pixels(chw.transpose(1, 2, 0).tolist(), (3, 4, 5)), chw)
    gray = np.arange(20).reshape(4, 5)
    np.testing.assert_array_equal(decode_pixels(gray.tolist(), (1, 4, 5)), gray[None])


@pytest.mark.parametrize("pixels, code", [
    ([[1, 2], [3, 4]], "wrong_pixel_shape"),
    ([[1, 2, 3], [4, 5]], "bad_pixels"),
    ([["a", "b"], ["c", "d"]], "bad_pixels"),
    (np.full((4, 5), 256).tolist(), "bad_pixels"),
    (np.full((4, 5), -1).tolist(), "bad_pixels"),
])
def test_bad_pixel_arrays_are_422(pixels, code):
    with pytest.raises(RequestError) as info:
        decode_pixels(pixels, (1, 4, 5))
    assert (info.value.status, info.value.error) == (422, code)


def test_json_bodies():
    one = {"pixels": np.zeros((4, 5)).tolist()}
    images, is_batch = decode_json_body(one, (1, 4, 5), LIMITS)
    assert len(images) == 1 and not is_batch
    images, is_batch = decode_json_body({"images": [one, one, one]}, (1, 4, 5), LIMITS)
    assert len(images) == 3 and is_batch
    for body, status in [({}, 400), ({"image": "x", "pixels": []}, 400), ([1, 2], 400),
                         ({"images": []}, 400), ({"image": "not base64!"}, 400),
                         ({"image": 5}, 400), ({"images": [one] * 3}, 413)]:
        with pytest.raises(RequestError) as info:
            decode_json_body(body, (1, 4, 5), ServeLimits(max_images=2))
        assert info.value.status == status, body


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_pixels"):
        ServeLimits(max_pixels=0)
