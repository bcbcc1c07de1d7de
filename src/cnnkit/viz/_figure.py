"""Figure creation and saving shared by every picture: no pyplot state, PNG written atomically."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def new_figure(width: float, height: float) -> Figure:
    """A figure that is not registered with pyplot, so it is freed like any Python object."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | os.PathLike | None, *, dpi: int = 100) -> Figure:
    """Write ``fig`` as a PNG at ``path`` (parent folders created) and return it; no-op for None.

    The file is written to a temporary name and renamed, so a reader never sees half a PNG.
    """
    if path is None:
        return fig
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share it
    fig.savefig(tmp, format="png", dpi=dpi)
    os.replace(tmp, path)
    logger.info("wrote %s", path)
    return fig


def to_numpy(value) -> np.ndarray:
    """Tensor (any device, with or without grad), array or list -> numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def image_for_display(image) -> tuple[np.ndarray, str | None]:
    """(C, H, W) / (H, W) tensor or array, uint8 or float -> (H, W[, 3]) floats in [0, 1] and a cmap.

    Float images are min-max scaled (normalised inputs have no fixed range), uint8 divided by 255.
    """
    array = to_numpy(image)
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]  # (H, W, 1) -> (H, W)
    if array.ndim not in (2, 3):
        raise ValueError(f"image must be (C, H, W) or (H, W) with C 1 or 3, got shape {array.shape}")
    if array.dtype == np.uint8:
        array = array / 255.0
    else:
        array = array.astype(np.float64)
        low, high = np.nanmin(array), np.nanmax(array)
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return array, ("gray" if array.ndim == 2 else None)


def mosaic(tiles: np.ndarray, nrows: int, ncols: int, *, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Lay out tiles (T, h, w[, 3]) row by row into one image with ``gap`` pixels of ``fill``.

    Shape:
        (T, h, w[, 3]) -> (nrows*(h+gap) - gap, ncols*(w+gap) - gap[, 3])
    """
    count, height, width = tiles.shape[:3]
    extra = tiles.shape[3:]
    out = np.full((nrows * (height + gap) - gap, ncols * (width + gap) - gap, *extra), fill)
    for index in range(count):
        row, col = divmod(index, ncols)
        top, left = row * (height + gap), col * (width + gap)
        out[top:top + height, left:left + width] = tiles[index]
    return out
