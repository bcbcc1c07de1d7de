"""The documented 40-megapixel limit is the one every image reader of cnnkit.data enforces.

The files here are tiny PNGs whose IHDR header claims a huge size: only the header is ever
read, so the tests use a few hundred bytes and no pixel memory.
"""
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.csv_source import load_csv
from cnnkit.data.folder import (DEFAULT_MAX_PIXELS, decode_image, load_image_folder,
                                open_image_checked)
from cnnkit.data.masks import read_masks
from cnnkit.errors import DataError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def huge_png(path, width: int, height: int):
    """A grayscale PNG whose header says ``width`` x ``height`` (its pixel data is a stub)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b""))
    return path


# 8000x6000 is above the 40 Mpx limit but under Pillow's warning (~89 Mpx); 20000x10000 is
# above Pillow's own error limit (~179 Mpx), which used to fire first with Pillow's message.
SIZES = [(8000, 6000), (20000, 10000)]


def test_default_is_the_documented_40_megapixels():
    assert DEFAULT_MAX_PIXELS == 40_000_000


@pytest.mark.parametrize("width, height", SIZES)
def test_decode_refuses_with_our_message_before_pillow(tmp_path, width, height):
    path = huge_png(tmp_path / "big.png", width, height)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail the test
        with pytest.raises(DataError) as info:
            decode_image(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{width}x{height} = {width * height} pixels" in message
    assert "max_pixels=40000000" in message and "exceeds limit" not in message
    assert Image.MAX_IMAGE_PIXELS == pillow_limit  # restored after the header read


def test_a_raised_max_pixels_is_the_limit_not_pillows(tmp_path):
    path = huge_png(tmp_path / "big.png", 20000, 10000)
    with open_image_checked(path, max_pixels=300_000_000) as image:
        assert image.size == (20000, 10000)  # header accepted; pixels never decoded here
    with pytest.raises(DataError, match=r"20000x10000 = 200000000 pixels .* max_pixels=100"):
        open_image_checked(path, max_pixels=100)


def test_folder_and_csv_readers_use_the_limit(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a" / "small.png")
    huge_png(tmp_path / "a" / "zbig.png", 8000, 6000)
    with pytest.raises(DataError, match=r"zbig.png: 8000x6000 .* max_pixels=40000000"):
        load_image_folder(tmp_path, strict=True)
    data = load_image_folder(tmp_path)  # not strict: skipped and listed
    assert len(data) == 1 and any("zbig.png" in name for name in data.skipped)
    (tmp_path / "list.csv").write_text("path,label\na/zbig.png,0\n")
    with pytest.raises(DataError, match=r"zbig.png: 8000x6000"):
        load_csv(tmp_path / "list.csv", strict=True)


def test_mask_reader_uses_the_limit(tmp_path):
    (tmp_path / "classes.txt").write_text("bg\nfg\n")
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / split / "images/a.png")
        huge_png(tmp_path / split / "masks/a.png", 20000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"refusing to decode mask .*a.png: 20000x10000"):
            read_masks(tmp_path)
