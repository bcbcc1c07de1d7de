"""Image folders: listing, decoding every format, channels, resize rules, and every error."""
from __future__ import annotations

import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.folder import (
    decode_image,
    list_image_folder,
    load_image_folder,
    load_image_folder_splits,
    split_folders,
)
from cnnkit.errors import DataError


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png_header_only(path, width, height):
    """A tiny PNG whose IHDR claims width x height pixels (a 'decompression bomb' header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
    return path


def test_load_image_folder_reads_pixels_and_sorted_classes(image_folder):
    data = load_image_folder(image_folder.path)
    assert data.class_names == ["cat", "dog", "red panda ü"]
    assert data.input_shape == (3, 6, 8)
    np.testing.assert_array_equal(data.images.numpy(), image_folder.images["all"])
    np.testing.assert_array_equal(data.labels.numpy(), image_folder.labels["all"])
    assert data.skipped == []


def test_list_image_folder_filters_and_sorts(tmp_path, image_writer):
    (tmp_path / "x").mkdir()
    for name in ["b.PNG", "a.jpg", "c.JPEG", "d.bmp", "e.webp", "f.gif"]:
        image_writer(tmp_path / "x" / name, np.zeros((1, 4, 4), np.uint8))
    (tmp_path / "x" / "notes.txt").write_text("not an image")
    (tmp_path / "x" / "._a.jpg").write_bytes(b"mac resource fork")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    files, names = list_image_folder(tmp_path)
    assert names == ["x"]
    assert [p.name for p, _ in files] == ["a.jpg", "b.PNG", "c.JPEG", "d.bmp", "e.webp", "f.gif"]
    assert load_image_folder(tmp_path).input_shape == (3, 4, 4)  # WebP and GIF are never 'L'
    data = load_image_folder(tmp_path, channels=1)
    assert data.images.shape == (6, 1, 4, 4)
    assert int(data.images.max()) <= 8  # black everywhere, small JPEG/WebP error allowed


def test_grayscale_and_colour_conversion(tmp_path, image_writer):
    colour = np.zeros((3, 2, 2), np.uint8)
    colour[0] = 255  # pure red
    path = image_writer(tmp_path / "red.png", colour)
    gray = decode_image(path, channels=1)
    assert gray.shape == (1, 2, 2)
    assert int(gray[0, 0, 0]) == round(255 * 299 / 1000)  # ITU-R 601-2 luma of red
    assert decode_image(path).shape == (3, 2, 2)
    gray_file = image_writer(tmp_path / "g.png", np.full((1, 2, 2), 77, np.uint8))
    assert decode_image(gray_file).shape == (1, 2, 2)
    rgb = decode_image(gray_file, channels=3)
    assert rgb.shape == (3, 2, 2) and (rgb == 77).all()


def test_default_channels_is_colour_if_any_image_is(tmp_path, image_writer):
    (tmp_path / "a").mkdir()
    image_writer(tmp_path / "a" / "gray.png", np.full((1, 3, 3), 9, np.uint8))
    image_writer(tmp_path / "a" / "rgb.png", np.full((3, 3, 3), 9, np.uint8))
    assert load_image_folder(tmp_path).input_shape == (3, 3, 3)
    assert load_image_folder(tmp_path, channels=1).input_shape == (1, 3, 3)


def test_rgba_and_sixteen_bit(tmp_path):
    rgba = tmp_path / "a.png"
    Image.fromarray(np.full((2, 3, 4), 200, np.uint8), mode="RGBA").save(rgba)
    assert decode_image(rgba).shape == (3, 2, 3)
    deep = tmp_path / "d.png"
    Image.fromarray(np.full((2, 2), 0x8000, np.uint16)).save(deep)
    out = decode_image(deep)
    assert out.shape == (1, 2, 2) and (out == 0x80).all()


@pytest.mark.parametrize("resize", ["crop", "stretch", "pad"])
@pytest.mark.parametrize("size, expected", [(5, (5, 5)), ((4, 9), (4, 9)), ((12, 3), (12, 3))])
def test_every_resize_rule_gives_the_requested_size(image_folder, resize, size, expected):
    data = load_image_folder(image_folder.path, size=size, resize=resize)
    assert data.input_shape == (3, *expected)


def test_resize_rules_differ_as_documented(tmp_path, image_writer):
    """A 4x8 white image into 4x4: crop and stretch stay white, pad adds black bars."""
    path = image_writer(tmp_path / "w.png", np.full((1, 4, 8), 255, np.uint8))
    assert (decode_image(path, size=4, resize="crop") == 255).all()
    assert (decode_image(path, size=4, resize="stretch") == 255).all()
    padded = decode_image(path, size=4, resize="pad")[0]
    assert (padded[0] == 0).all() and (padded[-1] == 0).all()  # letterbox rows
    assert (padded[1:3] == 255).all()


def test_crop_keeps_the_centre(tmp_path, image_writer):
    pixels = np.zeros((1, 2, 6), np.uint8)
    pixels[:, :, 2:4] = 255  # white centre stripe
    out = decode_image(image_writer(tmp_path / "s.png", pixels), size=2, resize="crop")
    assert (out == 255).all()


def test_exif_orientation_applied(tmp_path):
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("L", (8, 4), 128).save(path, exif=exif)
    assert decode_image(path).shape == (1, 8, 4)


def test_mixed_sizes_without_size(tmp_path, image_writer):
    (tmp_path / "a").mkdir()
    image_writer(tmp_path / "a" / "big.png", np.zeros((1, 32, 32), np.uint8))
    image_writer(tmp_path / "a" / "small.png", np.zeros((1, 28, 30), np.uint8))
    with pytest.raises(DataError, match=r"different sizes, e\.g\. .*big\.png is 32x32 \(HxW\) and "
                                        r".*small\.png is 28x30; pass size=\(H, W\)"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, size=16).input_shape == (1, 16, 16)


def test_truncated_jpeg_skipped_or_strict(image_folder, image_writer, caplog):
    rng = np.random.default_rng(0)
    bad = image_writer(image_folder.path / "cat" / "zz.jpg",
                       rng.integers(0, 256, (3, 6, 8), dtype=np.uint8))
    bad.write_bytes(bad.read_bytes()[:-50])  # header intact: fails only when decoded
    with caplog.at_level(logging.WARNING, logger="cnnkit.data.folder"):
        data = load_image_folder(image_folder.path)
    assert len(data) == len(image_folder.labels["all"])
    assert data.skipped == [str(bad)]
    assert "skipped 1 of 10 files" in caplog.text
    with pytest.raises(DataError, match=r"cannot decode image .*zz\.jpg: image file is truncated"):
        load_image_folder(image_folder.path, strict=True)


def test_garbage_file_skipped_or_strict(image_folder):
    (image_folder.path / "dog" / "broken.png").write_bytes(b"definitely not a png")
    assert len(load_image_folder(image_folder.path).skipped) == 1
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        load_image_folder(image_folder.path, strict=True)


def test_decompression_bomb_refused_by_pillow(tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 60000, 60000)
    with pytest.raises(DataError, match=r"refusing to decode .*bomb\.png"):
        decode_image(path)


def test_max_pixels_refused_before_decoding(tmp_path, image_writer):
    path = png_header_only(tmp_path / "big.png", 8000, 8000)  # 64 M pixels > default 40 M
    with pytest.raises(DataError, match=r"8000x8000 = 64000000 pixels is more than max_pixels"):
        decode_image(path)
    small = image_writer(tmp_path / "s.png", np.zeros((1, 10, 10), np.uint8))
    with pytest.raises(DataError, match="max_pixels=50"):
        decode_image(small, max_pixels=50)
    (tmp_path / "c").mkdir()
    small.rename(tmp_path / "c" / "s.png")
    with pytest.raises(DataError, match="max_pixels=50"):
        load_image_folder(tmp_path, max_pixels=50, strict=True)


def test_folder_errors(tmp_path, image_writer):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    image_writer(tmp_path / "loose.png", np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(DataError, match=r"no class sub-folders \(it has 1 images directly in"):
        load_image_folder(tmp_path)
    (tmp_path / "empty class").mkdir()
    with pytest.raises(DataError, match="class folder 'empty class' in .* has no images"):
        load_image_folder(tmp_path)


def test_no_readable_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no readable images in .* \(1 skipped\)"):
        load_image_folder(tmp_path)


def test_argument_errors(image_folder):
    with pytest.raises(ValueError, match="resize must be one of"):
        load_image_folder(image_folder.path, resize="fit")
    with pytest.raises(ValueError, match="channels must be None"):
        load_image_folder(image_folder.path, channels=2)
    with pytest.raises(ValueError, match="size values must be >= 1"):
        load_image_folder(image_folder.path, size=0)


def _splits(root, image_writer, layout):
    for split, classes in layout.items():
        for name in classes:
            (root / split / name).mkdir(parents=True)
            image_writer(root / split / name / "0.png", np.zeros((1, 3, 3), np.uint8))


def test_splits(tmp_path, image_writer):
    _splits(tmp_path, image_writer, {"train": ["a", "b"], "valid": ["a", "b"], "test": ["a", "b"]})
    assert set(split_folders(tmp_path)) == {"train", "val", "test"}
    splits = load_image_folder_splits(tmp_path)
    assert splits.class_names == ["a", "b"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2, 2, 2)


def test_splits_need_the_same_classes(tmp_path, image_writer):
    _splits(tmp_path, image_writer, {"train": ["a", "b"], "val": ["a", "c"]})
    with pytest.raises(DataError, match=r"class folders .*missing \['b'\], extra \['c'\]"):
        load_image_folder_splits(tmp_path)


def test_splits_missing(image_folder):
    assert split_folders(image_folder.path) == {}
    with pytest.raises(DataError, match="no split folders"):
        load_image_folder_splits(image_folder.path)
