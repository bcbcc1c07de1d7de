"""Heatmaps over an image (saliency, Grad-CAM) and receptive fields drawn on the image."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnkit.viz._figure import image_for_display, new_figure, save_figure, to_numpy


def plot_heatmap(image, heatmap, *, title: str = "Heatmap", alpha: float = 0.5,
                 path: str | os.PathLike | None = None) -> Figure:
    """Three panels: the image, the heatmap with its colour bar, and the heatmap over the image.

    Args:
        image: (C, H, W) or (H, W), uint8 or float.
        heatmap: (H, W) values (e.g. ``grad_cam`` in [0, 1] or ``saliency`` gradients).
        title: what the heatmap is, e.g. ``"Grad-CAM for class 'cat'"``.
        alpha: opacity of the heatmap in the overlay.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: the heatmap's (H, W) differs from the image's.

    Example:
        >>> import torch
        >>> fig = plot_heatmap(torch.rand(3, 8, 8), torch.rand(8, 8), title="saliency")
    """
    picture, cmap = image_for_display(image)
    values = to_numpy(heatmap).astype(np.float64)
    if values.shape != picture.shape[:2]:
        raise ValueError(f"heatmap shape {values.shape} must equal the image's (H, W) "
                         f"{picture.shape[:2]}")
    fig = new_figure(11.0, 4.0)
    left, middle, right = fig.subplots(1, 3)
    left.imshow(picture, cmap=cmap)
    left.set_title("input image")
    shown = middle.imshow(values, cmap="jet")
    fig.colorbar(shown, ax=middle, label="importance", shrink=0.8)
    middle.set_title(title)
    right.imshow(picture, cmap=cmap)
    right.imshow(values, cmap="jet", alpha=alpha)
    right.set_title("overlay (red = most important)")
    for ax in (left, middle, right):
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    return save_figure(fig, path)


def _corners(box) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) with exclusive bottom/right, from a 4-sequence or attributes."""
    if all(hasattr(box, name) for name in ("top", "left", "bottom", "right")):
        return int(box.top), int(box.left), int(box.bottom), int(box.right)
    values = tuple(box)
    if len(values) != 4:
        raise ValueError(f"box must be (top, left, bottom, right) in pixels, got {box!r}")
    return tuple(int(v) for v in values)


def plot_receptive_field(image, box, mask=None, *, title: str = "Receptive field",
                         path: str | os.PathLike | None = None) -> Figure:
    """Draw the input region a unit sees: a rectangle (theoretical) and a mask (measured).

    Args:
        image: (C, H, W) or (H, W).
        box: (top, left, bottom, right), bottom/right exclusive, in input pixels; it may reach
            outside the image (that part of the field covers zero padding).
        mask: optional (H, W) bool, the pixels whose gradient reaches the unit (effective field).
        path: also write the figure as a PNG here.

    Raises:
        ValueError: a malformed box or a mask of the wrong shape.

    Example:
        >>> import torch
        >>> fig = plot_receptive_field(torch.rand(1, 28, 28), (2, 2, 12, 12))
    """
    picture, cmap = image_for_display(image)
    top, left, bottom, right = _corners(box)
    if bottom <= top or right <= left:
        raise ValueError(f"box must have bottom > top and right > left, got {box!r}")
    fig = new_figure(5.5, 5.0)
    ax = fig.subplots()
    ax.imshow(picture, cmap=cmap)
    if mask is not None:
        mask = to_numpy(mask).astype(bool)
        if mask.shape != picture.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} must equal the image's (H, W) "
                             f"{picture.shape[:2]}")
        overlay = np.zeros((*mask.shape, 4))
        overlay[mask] = (0.0, 0.8, 0.2, 0.45)
        ax.imshow(overlay)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                           edgecolor="red", linewidth=2, label=f"{bottom - top}x{right - left} box"))
    height, width = picture.shape[:2]
    ax.set_xlim(min(-0.5, left - 1), max(width - 0.5, right))
    ax.set_ylim(max(height - 0.5, bottom), min(-0.5, top - 1))
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    caption = f"{title}: rows {top}..{bottom - 1}, columns {left}..{right - 1}"
    if mask is not None:
        caption += f"\ngreen: {int(mask.sum())} pixels with a non-zero gradient (effective field)"
    ax.set_title(caption, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
