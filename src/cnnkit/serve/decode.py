"""Request bodies -> uint8 images of the model's (C, H, W), or a :class:`RequestError` (4xx).

Accepted forms of one image (see the server's OpenAPI page for the full request schema):

* an uploaded file (multipart field ``file``; several ``file`` fields form a batch);
* JSON ``{"image": "<base64>"}`` (a ``data:image/png;base64,...`` URL is accepted too);
* JSON ``{"pixels": [...]}``: numbers 0–255 shaped (H, W) for one channel, (C, H, W) or
  (H, W, C) with the model's exact H and W;
* JSON ``{"images": [<either object above>, ...]}`` for a batch.

Files are decoded with Pillow and converted to the model's channels and size by the same rule
as image folders (:mod:`cnnkit.data.folder`: grayscale luma or RGB, EXIF orientation applied,
scale the shorter side and centre-crop). For a localise, segment or detect run
(``keep_size=True``) files keep their own size (only the channels are converted): the server
maps boxes and masks back onto the uploaded image. The pixel count is checked from the header
before any decoding, and Pillow's decompression-bomb guard stays on.
"""
from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnkit._checks import check_positive_int
from cnnkit.data.folder import DECODE_ERRORS, image_to_array


# File signatures of the formats we decode: an upload that starts with one is a damaged image.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")


@dataclass(frozen=True)
class ServeLimits:
    """What one request may contain; anything larger is refused with a 4xx before decoding.

    Args:
        max_upload_bytes: the whole request body (413 when larger).
        max_pixels: width × height of one uploaded image, read from its header (413).
        max_images: images in one batch request (413).
    """

    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 16_000_000
    max_images: int = 64

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_images"):
            check_positive_int(getattr(self, name), name)


class RequestError(Exception):
    """Bad input: becomes the JSON ``{"error": code, "detail": detail}`` with HTTP ``status``."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def decode_image_bytes(data: bytes, input_shape, limits: ServeLimits, *,
                       keep_size: bool = False) -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, ...) into the model's uint8 (C, H, W).

    Args:
        data: the file's bytes.
        input_shape: the model's (C, H, W).
        limits: ``max_pixels`` applies, from the header, before decoding.
        keep_size: keep the image's own (H', W') (only the channels become the model's).

    Shape:
        any (H', W') image -> (C, H, W) = ``input_shape``, or (C, H', W') with ``keep_size``.

    Raises:
        RequestError: 400 empty or not an image, 422 truncated/corrupt, 413 too many pixels.

    Example:
        >>> decode_image_bytes(open("7.png", "rb").read(), (1, 28, 28), ServeLimits()).shape
        (1, 28, 28)
    """
    if not data:
        raise RequestError(400, "empty_image", "the image is empty (0 bytes); send an image file")
    channels, height, width = input_shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise RequestError(413, "image_too_large", str(error)) from None
    except UnidentifiedImageError:
        if data.startswith(_SIGNATURES):
            raise RequestError(422, "corrupt_image",
                               f"the upload starts like an image file ({data[:8]!r}) but Pillow "
                               f"cannot read it: it is truncated or corrupt ({len(data)} "
                               "bytes)") from None
        raise RequestError(400, "not_an_image",
                           f"the upload ({len(data)} bytes starting {data[:8]!r}) is not an image "
                           "Pillow can read; send a PNG, JPEG, BMP, WebP or GIF file") from None
    except DECODE_ERRORS as error:
        raise RequestError(422, "corrupt_image",
                           f"the image header cannot be read ({error})") from None
    with image:
        pixels = image.size[0] * image.size[1]
        if pixels > limits.max_pixels:
            raise RequestError(413, "image_too_large",
                               f"the image is {image.size[0]}x{image.size[1]} = {pixels} pixels, "
                               f"more than the server's limit of {limits.max_pixels}; shrink it")
        try:
            return image_to_array(image, channels=channels,
                                  size=None if keep_size else (height, width))
        except (*DECODE_ERRORS, Image.DecompressionBombError) as error:
            raise RequestError(422, "corrupt_image",
                               f"the image could not be decoded: it is truncated or corrupt "
                               f"({error})") from None


def decode_base64(text, limits: ServeLimits, input_shape, *,
                  keep_size: bool = False) -> np.ndarray:
    """A base64 string (or ``data:`` URL) of an encoded image -> uint8 (C, H, W).

    Raises:
        RequestError: 400 not a string / not base64, and everything :func:`decode_image_bytes`
            raises.
    """
    if not isinstance(text, str):
        raise RequestError(400, "bad_image_field",
                           f'"image" must be a base64 string, got {type(text).__name__}')
    if text.startswith("data:"):
        text = text.partition(",")[2]  # "data:image/png;base64,AAAA" -> "AAAA"
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(400, "bad_base64",
                           f'"image" is not valid base64 ({error}); encode the file\'s bytes '
                           "with standard base64") from None
    return decode_image_bytes(data, input_shape, limits, keep_size=keep_size)


def decode_pixels(value, input_shape) -> np.ndarray:
    """A nested list of numbers 0–255 -> uint8 (C, H, W).

    Accepted shapes: (C, H, W), (H, W, C), and (H, W) when the model has one channel.

    Shape:
        (H, W) -> (1, H, W); (H, W, C) -> (C, H, W); (C, H, W) unchanged.

    Raises:
        RequestError: 422 not a rectangular array of numbers, a wrong shape, or values
            outside 0–255.
    """
    channels, height, width = input_shape
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RequestError(422, "bad_pixels", '"pixels" must be a rectangular nested list of '
                                              "numbers 0-255") from None
    shape = array.shape
    if shape == (height, width) and channels == 1:
        array = array[None]  # (H, W) -> (1, H, W)
    elif shape == (height, width, channels) and shape != (channels, height, width):
        array = array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    elif shape != (channels, height, width):
        accepted = [(channels, height, width), (height, width, channels)]
        if channels == 1:
            accepted.append((height, width))
        raise RequestError(422, "wrong_pixel_shape",
                           f'"pixels" has shape {shape}, the model expects one of {accepted} '
                           f"(C, H, W order first); resize the image to {height}x{width}")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 255:
        raise RequestError(422, "bad_pixels", '"pixels" values must be finite numbers in 0-255')
    return np.ascontiguousarray(np.rint(array).astype(np.uint8))


def decode_json_item(item, input_shape, limits: ServeLimits, *,
                     keep_size: bool = False) -> np.ndarray:
    """One JSON image object (``{"image": ...}`` or ``{"pixels": ...}``) -> uint8 (C, H, W).

    ``keep_size`` applies to ``"image"`` files (see :func:`decode_image_bytes`); ``"pixels"``
    always have the model's (H, W).

    Raises:
        RequestError: 400 neither or both keys, and what the decoders raise.
    """
    if not isinstance(item, dict) or ("image" in item) == ("pixels" in item):
        raise RequestError(400, "bad_json",
                           'each image must be a JSON object with exactly one of "image" '
                           '(base64 file) or "pixels" (nested list 0-255)')
    if "image" in item:
        return decode_base64(item["image"], limits, input_shape, keep_size=keep_size)
    return decode_pixels(item["pixels"], input_shape)


def decode_json_body(body, input_shape, limits: ServeLimits, *,
                     keep_size: bool = False) -> tuple[list[np.ndarray], bool]:
    """A parsed JSON body -> (images, is_batch); ``keep_size`` as :func:`decode_json_item`.

    Raises:
        RequestError: 400 a body of the wrong form, 413 too many images, and what
            :func:`decode_json_item` raises.
    """
    if isinstance(body, dict) and "images" in body:
        items = body["images"]
        if not isinstance(items, list) or not items:
            raise RequestError(400, "bad_json", '"images" must be a non-empty list of image '
                                                'objects ({"image": ...} or {"pixels": ...})')
        if len(items) > limits.max_images:
            raise RequestError(413, "too_many_images",
                               f"{len(items)} images in one request, the limit is "
                               f"{limits.max_images}; split the batch")
        return [decode_json_item(item, input_shape, limits, keep_size=keep_size)
                for item in items], True
    return [decode_json_item(body, input_shape, limits, keep_size=keep_size)], False
