"""Masks and boxes drawn into pixel arrays with numpy and Pillow (no matplotlib).

``cnnkit predict --out`` and the web server use these: importing matplotlib costs about 0.5 s
(bench/RESULTS.md), so nothing here imports it. Every function returns a new uint8 array
``(H, W, 3)`` (or PNG bytes) and never changes its input.

Conventions: images are uint8 ``(C, H, W)`` with C = 1 or 3 (a tensor or an array), ``(H, W)``
grey, or already-RGB ``(H, W, 3)`` arrays (what these functions return). A numpy array whose last
axis is 3 is read as ``(H, W, 3)``, a tensor always as ``(C, H, W)``. Masks are ``(H, W)`` integer
class indices, 255 = ignore. Boxes are pixel ``(x_min, y_min, x_max, y_max)``, max exclusive.

Example:
    >>> import numpy as np
    >>> image = np.zeros((1, 8, 8), dtype=np.uint8)
    >>> mask = np.zeros((8, 8), dtype=np.uint8); mask[2:5, 2:5] = 1
    >>> overlay_mask(image, mask, num_classes=2).shape
    (8, 8, 3)
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnkit._checks import check_positive_int, check_probability

IGNORE_INDEX = 255
IGNORE_COLOR = (255, 255, 255)  # white: no class colour reaches 255 in any channel (see palette)
MAX_CLASSES = 255               # class indices 0..254; 255 is the ignore index


def _as_array(value) -> np.ndarray:
    """Tensor (any device, with or without grad), array or list -> numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _rgb(image, name: str = "image") -> np.ndarray:
    """``(C, H, W)`` C in {1, 3}, ``(H, W)`` or ``(H, W, 3)`` uint8 -> a new ``(H, W, 3)`` uint8 array."""
    is_tensor = hasattr(image, "detach")
    array = _as_array(image)
    if array.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 pixels (0-255), got dtype {array.dtype}; convert a "
                        f"0-1 float image with (x * 255).round().to(torch.uint8)")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if array.ndim == 3:
        if array.shape[-1] == 3 and (not is_tensor or array.shape[0] not in (1, 3)):
            return array.copy()
        if array.shape[0] == 3:
            return np.ascontiguousarray(np.moveaxis(array, 0, -1))  # (3, H, W) -> (H, W, 3)
        if array.shape[0] == 1:
            return np.repeat(np.moveaxis(array, 0, -1), 3, axis=2)  # (1, H, W) -> (H, W, 3)
    raise ValueError(f"{name} must be (C, H, W) with C 1 or 3, (H, W) or (H, W, 3); got shape "
                     f"{tuple(array.shape)}")


def _mask(mask, num_classes: int, name: str = "mask") -> np.ndarray:
    """Check an ``(H, W)`` mask of class indices in [0, num_classes) or 255; return it as int64."""
    array = _as_array(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must be (H, W) class indices, got shape {tuple(array.shape)}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    bad = array[((array < 0) | (array >= num_classes)) & (array != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f"{name} holds class index {int(bad[0])!r}, outside 0..{num_classes - 1} "
                         f"(and not the ignore index {IGNORE_INDEX}); check num_classes")
    return array


def palette(num_classes: int) -> np.ndarray:
    """Distinct, deterministic colours for ``num_classes`` classes, class 0 (background) black.

    The Pascal VOC colour map: the bits of the class index are spread over the high bits of R, G
    and B, so every index below 256 gets its own colour and no channel exceeds 224 (white stays
    free for :data:`IGNORE_COLOR`).

    Args:
        num_classes: K, from 1 to 255.

    Shape:
        -> (K, 3) uint8

    Raises:
        ValueError: ``num_classes`` outside 1..255.

    Example:
        >>> palette(3).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    check_positive_int(num_classes, "num_classes")
    if num_classes > MAX_CLASSES:
        raise ValueError(f"num_classes must be at most {MAX_CLASSES} (255 is the ignore index), "
                         f"got {num_classes!r}")
    colours = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours[index] = (r, g, b)
    return colours


def colorize_mask(mask, num_classes: int) -> np.ndarray:
    """Colour each pixel of a class-index mask with its :func:`palette` colour; ignore (255) is white.

    Args:
        mask: (H, W) integer class indices in [0, num_classes) or 255.
        num_classes: K.

    Shape:
        (H, W) -> (H, W, 3) uint8

    Raises:
        ValueError: ``mask`` is not (H, W) or holds an index outside 0..K-1 other than 255.
        TypeError: ``mask`` is not integer.

    Example:
        >>> colorize_mask(np.array([[0, 1], [2, 255]]), 3)[1, 1].tolist()
        [255, 255, 255]
    """
    indices = _mask(mask, num_classes)
    colours = np.concatenate([palette(num_classes), np.array([IGNORE_COLOR], dtype=np.uint8)])
    return colours[np.where(indices == IGNORE_INDEX, num_classes, indices)]  # (H, W) -> (H, W, 3)


def overlay_mask(image, mask, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours of ``mask`` over ``image``; background (class 0) pixels stay the image.

    Each non-background pixel becomes ``(1 - alpha) * image + alpha * colour`` (rounded); ignore
    pixels (255) are blended with white.

    Args:
        image: uint8 (C, H, W), (H, W) or (H, W, 3).
        mask: (H, W) class indices (255 = ignore), the image's height and width.
        num_classes: K.
        alpha: weight of the class colour, in [0, 1].

    Shape:
        image (C, H, W), mask (H, W) -> (H, W, 3) uint8

    Raises:
        ValueError: bad shapes, a mask of another size than the image, ``alpha`` outside [0, 1].

    Example:
        >>> overlay_mask(np.full((4, 4), 100, np.uint8), np.eye(4, dtype=np.uint8), 2)[0, 0].tolist()
        [114, 50, 50]
    """
    alpha = check_probability(alpha, "alpha", inclusive_high=True)
    rgb = _rgb(image)
    colours = colorize_mask(mask, num_classes)
    if colours.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"mask must have the image's size {rgb.shape[:2]} (H, W), got "
                         f"{colours.shape[:2]}")
    blended = np.rint((1.0 - alpha) * rgb + alpha * colours.astype(np.float64)).astype(np.uint8)
    foreground = (_as_array(mask) != 0)[:, :, None]  # (H, W) -> (H, W, 1)
    return np.where(foreground, blended, rgb)


def _label_patch(draw: ImageDraw.ImageDraw, text: str, font, box: tuple[int, int, int, int],
                 height: int, below: bool) -> tuple[int, int, int, int]:
    """The label's patch: above the box's top-left corner (``below``: under its bottom-left one).

    Where that would leave the image, the patch moves inside the box.
    """
    x0, y0, _, y1 = box
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, anchor="lt")
    text_h = bottom - top + 1
    if below:
        ty = y1 + 1 if y1 + 1 + text_h <= height else max(y1 - text_h + 1, 0)
    else:
        ty = y0 - text_h if y0 - text_h >= 0 else min(y0, max(height - text_h, 0))
    return x0, ty, x0 + right - left + 1, ty + text_h


def draw_boxes(image, boxes, labels: Sequence[str], *, scores=None,
               color: tuple[int, int, int] = (255, 0, 0), width: int = 1,
               label_below: bool = False) -> np.ndarray:
    """Draw box outlines in ``color`` with their label (and score) at the top-left corner.

    A box ``(x_min, y_min, x_max, y_max)`` (rounded to whole pixels) outlines columns
    ``x_min .. x_max - 1`` and rows ``y_min .. y_max - 1`` (max exclusive), the line ``width`` pixels
    thick, drawn inwards. The label is written in white on a ``color`` patch just above the box
    (inside it when the box touches the top), or below it with ``label_below``; an empty label
    with no score writes nothing. Pass the result back in to draw a second set of boxes
    (predictions after the truth) in another colour, with ``label_below=True`` so their labels
    do not cover the first set's.

    Args:
        image: uint8 (C, H, W), (H, W) or (H, W, 3).
        boxes: (D, 4) pixel xyxy boxes; D may be 0. Boxes are clipped to the image; a box wholly
            outside it is skipped.
        labels: D strings.
        scores: optional (D,) scores, written as ``label 0.93``.
        color: RGB of the outlines and label patches.
        width: line width in pixels.
        label_below: write the labels under the boxes' bottom-left corners instead of above.

    Shape:
        image (C, H, W), boxes (D, 4) -> (H, W, 3) uint8

    Raises:
        ValueError: ``boxes`` not (D, 4), ``labels`` or ``scores`` not D long, a bad ``color``.

    Example:
        >>> out = draw_boxes(np.zeros((10, 10), np.uint8), [[2, 2, 6, 5]], [""])
        >>> out[2, 2:6, 0].tolist()
        [255, 255, 255, 255]
    """
    rgb = _rgb(image)
    array = _as_array(boxes).astype(np.float64)
    if array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be (D, 4) xyxy pixel boxes, got shape {tuple(array.shape)}")
    labels = [str(label) for label in labels]
    if len(labels) != len(array):
        raise ValueError(f"labels must have one entry per box: got {len(labels)} labels for "
                         f"{len(array)} boxes")
    if scores is not None:
        scores = _as_array(scores).astype(np.float64).reshape(-1)  # (D,) or (D, 1) -> (D,)
        if len(scores) != len(array):
            raise ValueError(f"scores must be (D,) with one score per box: got {len(scores)} "
                             f"scores for {len(array)} boxes")
    color = tuple(int(c) for c in color)
    if len(color) != 3 or not all(0 <= c <= 255 for c in color):
        raise ValueError(f"color must be an (R, G, B) triple of 0-255 ints, got {color!r}")
    check_positive_int(width, "width")
    height, img_width = rgb.shape[:2]
    picture = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for index, (x_min, y_min, x_max, y_max) in enumerate(np.rint(array).astype(np.int64)):
        x0, y0 = max(int(x_min), 0), max(int(y_min), 0)
        x1, y1 = min(int(x_max), img_width) - 1, min(int(y_max), height) - 1  # inclusive corner
        if x0 > x1 or y0 > y1:
            continue  # outside the image, or empty after rounding
        draw.rectangle((x0, y0, x1, y1), outline=color, width=width)
        text = labels[index] if scores is None else f"{labels[index]} {scores[index]:.2f}".strip()
        if text:
            patch = _label_patch(draw, text, font, (x0, y0, x1, y1), height, label_below)
            draw.rectangle(patch, fill=color)
            draw.text((patch[0] + 1, patch[1]), text, fill=(255, 255, 255), font=font, anchor="lt")
    return np.asarray(picture, dtype=np.uint8).copy()


def class_areas(mask, class_names: Sequence[str]) -> dict[str, float]:
    """The share of the (non-ignore) pixels of each class present in ``mask``, in class order.

    Args:
        mask: (H, W) class indices, 255 = ignore.
        class_names: K names, index order.

    Returns:
        ``{name: fraction}`` for each class with at least one pixel; the fractions sum to 1
        (an all-ignore mask gives ``{}``).

    Raises:
        ValueError: ``mask`` is not (H, W) or holds an index outside 0..K-1 other than 255.

    Example:
        >>> class_areas(np.array([[0, 0, 1, 255]]), ["background", "cat"])
        {'background': 0.6666666666666666, 'cat': 0.3333333333333333}
    """
    names = [str(name) for name in class_names]
    indices = _mask(mask, len(names))
    valid = indices[indices != IGNORE_INDEX]
    if valid.size == 0:
        return {}
    counts = np.bincount(valid, minlength=len(names))
    return {names[k]: float(counts[k] / valid.size) for k in np.flatnonzero(counts)}


def png_bytes(array) -> bytes:
    """Encode a uint8 (H, W) array as a grey (mode L) PNG, or (H, W, 3) as an RGB PNG.

    A class-index mask is written as mode L, so its pixel values are the class indices.

    Shape:
        (H, W) or (H, W, 3) -> PNG file bytes

    Raises:
        ValueError: another shape, or values outside 0..255.
        TypeError: not integer.

    Example:
        >>> png_bytes(np.zeros((2, 3), np.uint8))[:4]
        b'\\x89PNG'
    """
    pixels = _as_array(array)
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"array must be (H, W) (grey or a mask) or (H, W, 3) (RGB), got shape "
                         f"{tuple(pixels.shape)}")
    if pixels.dtype != np.uint8:
        if not np.issubdtype(pixels.dtype, np.integer):
            raise TypeError(f"array must be uint8 pixels or integer class indices, got dtype "
                            f"{pixels.dtype}")
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise ValueError(f"array values must be in 0..255 for a PNG, got "
                             f"{int(pixels.min())}..{int(pixels.max())}")
        pixels = pixels.astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode="L" if pixels.ndim == 2 else "RGB").save(
        buffer, format="PNG")
    return buffer.getvalue()
