"""Masks and boxes drawn into pixels with numpy + Pillow: exact pixels on hand-made cases."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.viz.overlay import (IGNORE_COLOR, class_areas, colorize_mask, draw_boxes, overlay_mask,
                                palette, png_bytes)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def test_palette_is_distinct_deterministic_and_background_black():
    colours = palette(255)
    assert colours.shape == (255, 3) and colours.dtype == np.uint8
    assert colours[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in colours.tolist()}) == 255
    assert colours.max() < 255, "white is kept for the ignore colour"
    assert np.array_equal(palette(5), colours[:5])
    assert palette(3).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]


def test_palette_errors():
    with pytest.raises(ValueError, match=r"num_classes must be at most 255"):
        palette(256)
    with pytest.raises(ValueError, match=r"num_classes must be >= 1, got 0"):
        palette(0)


def test_colorize_mask_and_ignore_is_white():
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    out = colorize_mask(mask, 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out.tolist() == [[[0, 0, 0], [128, 0, 0]], [[0, 128, 0], list(IGNORE_COLOR)]]
    assert IGNORE_COLOR == (255, 255, 255)
    with pytest.raises(ValueError, match=r"mask holds class index 3, outside 0\.\.2"):
        colorize_mask(np.array([[3]]), 3)
    with pytest.raises(ValueError, match=r"mask must be \(H, W\) class indices, got shape \(1, 2, 2\)"):
        colorize_mask(np.zeros((1, 2, 2), np.uint8), 3)


def test_overlay_keeps_background_and_blends_classes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(3, 6, 5), dtype=np.uint8)
    mask = np.zeros((6, 5), dtype=np.int64)
    mask[1:3, 1:4] = 1
    mask[4, :] = 2
    mask[5, 0] = 255
    out = overlay_mask(torch.from_numpy(image), torch.from_numpy(mask), num_classes=3, alpha=0.25)
    rgb = np.moveaxis(image, 0, -1)  # (3, H, W) -> (H, W, 3)
    background = mask == 0
    assert np.array_equal(out[background], rgb[background])
    expected = np.rint(0.75 * rgb + 0.25 * colorize_mask(mask, 3).astype(float)).astype(np.uint8)
    assert np.array_equal(out[~background], expected[~background])
    assert not np.array_equal(out[~background], rgb[~background])


def test_overlay_on_grey_image_and_size_mismatch():
    grey = np.full((1, 4, 4), 100, dtype=np.uint8)
    out = overlay_mask(grey, np.eye(4, dtype=np.uint8), 2)
    assert out[0, 0].tolist() == [114, 50, 50] and out[0, 1].tolist() == [100, 100, 100]
    with pytest.raises(ValueError, match=r"mask must have the image's size \(4, 4\).*got \(3, 4\)"):
        overlay_mask(grey, np.zeros((3, 4), np.uint8), 2)
    with pytest.raises(TypeError, match=r"image must be uint8"):
        overlay_mask(grey.astype(np.float32), np.zeros((4, 4), np.uint8), 2)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        overlay_mask(grey, np.zeros((4, 4), np.uint8), 2, alpha=1.5)


# The outline of the box (2, 3, 7, 8) on a 10x10 image: columns 2..6, rows 3..7 (max exclusive).
OUTLINE = np.array([[c == "#" for c in row] for row in [
    "..........",
    "..........",
    "..........",
    "..#####...",
    "..#...#...",
    "..#...#...",
    "..#...#...",
    "..#####...",
    "..........",
    "..........",
]])


def test_draw_boxes_colours_exactly_the_outline():
    image = np.zeros((1, 10, 10), dtype=np.uint8)
    out = draw_boxes(image, np.array([[2.0, 3.0, 7.0, 8.0]]), [""], color=RED)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert np.array_equal(np.all(out == RED, axis=2), OUTLINE)
    assert np.array_equal(out[~OUTLINE], np.zeros((int((~OUTLINE).sum()), 3), np.uint8))
    assert image.max() == 0, "the input is left alone"


def test_draw_boxes_twice_in_two_colours_and_thick_lines():
    first = draw_boxes(np.zeros((10, 10), np.uint8), [[2, 3, 7, 8]], [""], color=RED)
    both = draw_boxes(first, [[0, 0, 3, 3]], [""], color=BLUE)  # an (H, W, 3) array goes back in
    second = np.zeros((10, 10), bool)
    second[0, 0:3] = second[2, 0:3] = second[0:3, 0] = second[0:3, 2] = True
    assert np.array_equal(np.all(both == BLUE, axis=2), second)
    assert np.array_equal(np.all(both == RED, axis=2), OUTLINE & ~second)
    thick = draw_boxes(np.zeros((10, 10), np.uint8), [[2, 3, 7, 8]], [""], width=2)
    inner = np.zeros((10, 10), bool)
    inner[3:8, 2:7] = True
    inner[5:6, 4:5] = False  # only the centre pixel is farther than 2 pixels from the edge
    assert np.array_equal(np.all(thick == RED, axis=2), inner)


def test_draw_boxes_writes_label_and_score_above_the_box():
    out = draw_boxes(np.zeros((40, 40), np.uint8), [[5, 25, 30, 38]], ["seven"], scores=[0.93])
    above = out[:25]
    assert np.all(above == RED, axis=2).sum() > 20, "the label patch is drawn above the box"
    assert (above.min(axis=2) > 200).sum() > 5, "the label text is drawn in (antialiased) white"
    clear = draw_boxes(np.zeros((40, 40), np.uint8), [[5, 25, 30, 38]], [""])
    assert clear[:25].max() == 0
    below = draw_boxes(np.zeros((40, 40), np.uint8), [[5, 2, 30, 20]], ["seven"], label_below=True)
    assert below[:2].max() == 0 and np.all(below[21:] == RED, axis=2).sum() > 20


def test_draw_boxes_clips_skips_and_checks():
    out = draw_boxes(np.zeros((6, 6), np.uint8), [[-3, -3, 3, 3], [10, 10, 12, 12]], ["", ""])
    clipped = np.zeros((6, 6), bool)
    clipped[0:3, 0:3] = True
    clipped[1, 1] = False  # the box clipped to rows/cols 0..2 is outlined there
    assert np.array_equal(np.all(out == RED, axis=2), clipped), "and the outside box is skipped"
    assert draw_boxes(np.zeros((6, 6), np.uint8), np.zeros((0, 4)), []).max() == 0
    with pytest.raises(ValueError, match=r"boxes must be \(D, 4\).*got shape \(1, 5\)"):
        draw_boxes(np.zeros((6, 6), np.uint8), [[0, 0, 1, 1, 1]], ["a"])
    with pytest.raises(ValueError, match=r"labels must have one entry per box: got 2 labels for 1"):
        draw_boxes(np.zeros((6, 6), np.uint8), [[0, 0, 1, 1]], ["a", "b"])
    with pytest.raises(ValueError, match=r"scores must be \(D,\).*got 2 scores for 1 boxes"):
        draw_boxes(np.zeros((6, 6), np.uint8), [[0, 0, 1, 1]], ["a"], scores=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"image must be \(C, H, W\) with C 1 or 3.*\(2, 6, 6\)"):
        draw_boxes(np.zeros((2, 6, 6), np.uint8), [[0, 0, 1, 1]], ["a"])


def test_class_areas_of_a_known_mask():
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[0, :] = 255         # 5 ignored pixels: 15 are counted
    mask[1, 0:3] = 2         # 3 pixels of "cat"
    areas = class_areas(torch.from_numpy(mask), ["background", "dog", "cat"])
    assert list(areas) == ["background", "cat"], "absent classes are left out, class order kept"
    assert areas["background"] == pytest.approx(12 / 15) and areas["cat"] == pytest.approx(3 / 15)
    assert class_areas(np.full((2, 2), 255, np.uint8), ["background"]) == {}


def test_png_bytes_round_trip():
    mask = np.arange(12, dtype=np.int64).reshape(3, 4)
    with Image.open(io.BytesIO(png_bytes(mask))) as grey:
        assert grey.mode == "L" and np.array_equal(np.asarray(grey), mask)
    rgb = np.random.default_rng(1).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(png_bytes(rgb))) as colour:
        assert colour.mode == "RGB" and np.array_equal(np.asarray(colour), rgb)
    with pytest.raises(ValueError, match=r"array must be \(H, W\).*got shape \(2, 2, 4\)"):
        png_bytes(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match=r"values must be in 0\.\.255.*got 0\.\.300"):
        png_bytes(np.array([[0, 300]]))


def test_overlay_does_not_import_matplotlib():
    code = ("import sys; from cnnkit.viz import overlay_mask; import cnnkit.viz.overlay; "
            "print('matplotlib' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
