"""decode_image's short cuts give what the plain Pillow route gives.

The plain route is the one decode_image took before the short cuts: ``exif_transpose`` always,
``convert`` always, ``np.asarray``, full-size JPEG decode. Each test writes real files.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps, PngImagePlugin

from cnnkit.data.folder import decode_image, decode_image_into
from cnnkit.errors import DataError

ORIENTATION = 0x0112


def plain_pillow(path, *, mode: str, size=None) -> np.ndarray:
    """The reference: Pillow's exif_transpose + convert (+ ImageOps.fit), as (C, H, W)."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert(mode)
        if size is not None:
            image = ImageOps.fit(image, (size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # -> (C, H, W)


def asymmetric(height: int, width: int, channels: int = 3) -> np.ndarray:
    """(H, W, C) uint8 pixels with no symmetry, so any flip or turn changes them."""
    values = np.arange(height * width * channels, dtype=np.int64) * 37 % 251
    return values.reshape(height, width, channels).astype(np.uint8)


def with_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_chunk_orientation_is_applied(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(asymmetric(3, 5)).save(path, exif=with_exif(orientation))
    out = decode_image(path, channels=3)
    np.testing.assert_array_equal(out, plain_pillow(path, mode="RGB"))
    assert out.shape == ((3, 5, 3) if orientation >= 5 else (3, 3, 5))


def test_png_xmp_orientation_is_applied(tmp_path):
    path = tmp_path / "xmp.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp",
                  '<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>')
    Image.fromarray(asymmetric(3, 5)).save(path, pnginfo=info)
    out = decode_image(path, channels=3)
    assert out.shape == (3, 5, 3)
    np.testing.assert_array_equal(out, plain_pillow(path, mode="RGB"))


@pytest.mark.parametrize("suffix", [".webp", ".jpg"])
def test_exif_orientation_in_webp_and_jpeg(tmp_path, suffix):
    path = tmp_path / f"turned{suffix}"
    Image.fromarray(asymmetric(4, 8)).save(path, exif=with_exif(6), quality=100)
    out = decode_image(path, channels=3)
    assert out.shape == (3, 8, 4)
    np.testing.assert_array_equal(out, plain_pillow(path, mode="RGB"))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".gif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_files_without_orientation_keep_their_pixels(tmp_path, suffix, channels):
    path = tmp_path / f"plain{suffix}"
    Image.fromarray(asymmetric(4, 6, 3)).save(path)
    mode = "L" if channels == 1 else "RGB"
    np.testing.assert_array_equal(decode_image(path, channels=channels),
                                  plain_pillow(path, mode=mode))


def test_images_already_in_the_target_mode_are_exact(tmp_path):
    grey, colour = asymmetric(4, 6, 1)[..., 0], asymmetric(4, 6, 3)
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(colour).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "l.png", channels=1)[0], grey)
    np.testing.assert_array_equal(decode_image(tmp_path / "rgb.png", channels=3),
                                  colour.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def test_decode_into_writes_the_batch_slot(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(asymmetric(5, 7, 3) + i).save(paths[-1])
    batch = np.zeros((3, 3, 4, 4), np.uint8)
    for i, path in enumerate(paths):
        returned = decode_image_into(str(path), batch[i], channels=3, size=(4, 4), resize="pad")
        assert np.shares_memory(returned, batch)
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(batch[i], decode_image(path, size=4, resize="pad"))


def test_decode_into_a_slot_of_the_wrong_shape_names_the_file(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(asymmetric(4, 4, 3)).save(path)
    with pytest.raises(DataError, match=r"a\.png.*out has the shape \(1, 4, 4\)"):
        decode_image_into(path, np.zeros((1, 4, 4), np.uint8), channels=3, size=(4, 4),
                          resize="crop")


def smooth_photo(height: int, width: int) -> np.ndarray:
    """A JPEG-friendly (H, W, 3) picture: gradients and a little noise."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], -1)
    noise = np.random.default_rng(0).normal(0, 4, pixels.shape)
    return (pixels + noise).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("resize", ["crop", "stretch", "pad"])
def test_large_jpeg_reduced_while_decoding_stays_close_to_a_full_decode(tmp_path, resize):
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth_photo(200, 300)).save(path, quality=95)
    out = decode_image(path, channels=3, size=(24, 32), resize=resize)
    with Image.open(path) as image:  # the full-size decode, then the same resize rule
        full = image.convert("RGB")
        fitted = {"crop": lambda: ImageOps.fit(full, (32, 24), Image.Resampling.BILINEAR),
                  "stretch": lambda: full.resize((32, 24), Image.Resampling.BILINEAR),
                  "pad": lambda: ImageOps.pad(full, (32, 24), Image.Resampling.BILINEAR,
                                              color=0)}[resize]()
    reference = np.asarray(fitted).transpose(2, 0, 1).astype(np.int16)  # (H, W, C) -> (C, H, W)
    assert out.shape == (3, 24, 32)
    assert np.abs(out.astype(np.int16) - reference).mean() < 1.5


def test_jpeg_draft_only_when_at_least_four_times_the_target(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(smooth_photo(60, 80)).save(path, quality=95)
    # 60x80 into 16x20: under four times on the height, so decoded at full size (exact match)
    np.testing.assert_array_equal(decode_image(path, channels=3, size=(16, 20)),
                                  plain_pillow(path, mode="RGB", size=(16, 20)))
    # into 15x20 the reduced 30x40 decode is used: close to, not equal to, the full decode
    reduced = decode_image(path, channels=3, size=(15, 20)).astype(np.int16)
    full = plain_pillow(path, mode="RGB", size=(15, 20)).astype(np.int16)
    assert 0 < np.abs(reduced - full).mean() < 1.5


def test_turned_jpeg_is_reduced_by_its_stored_sides(tmp_path):
    """Orientation 6 (turn 90°): the file stores 320 wide x 80 high, the image shows 80 x 320.

    Into 10 high x 40 wide, the stored sides must be compared with the turned target (40 x 10
    stored): 80 < 4 * 40, so no reduction and an exact full decode. Comparing them with the
    unturned target would reduce 4x to 20 x 80 (displayed) and then upscale to 40 wide.
    """
    path = tmp_path / "turned.jpg"
    Image.fromarray(smooth_photo(80, 320)).save(path, exif=with_exif(6), quality=95)
    out = decode_image(path, channels=3, size=(10, 40), resize="crop")
    assert out.shape == (3, 10, 40)
    np.testing.assert_array_equal(out, plain_pillow(path, mode="RGB", size=(10, 40)))
