"""A picture of what an augmentation does: each sample next to several augmented versions.

This is what ``cnnkit show augment`` draws (the CLI command lives in ``cnnkit.cli.show`` and
calls ``augment_grid``). The figure is a plain ``matplotlib.figure.Figure`` drawn with the Agg
canvas and never registered with pyplot, so it works without a display and is freed like any
Python object.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from matplotlib.figure import Figure

from cnnkit._checks import check_positive_int
from cnnkit.augment.base import check_batch

logger = logging.getLogger(__name__)


def _to_unit_float(images) -> torch.Tensor:
    """uint8 0-255 or float 0-1 images as float32 0-1 on the CPU. Shape: (N, C, H, W)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)!r}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels to be drawn, got {images.shape[1]}")
    if images.dtype == torch.uint8:
        return images.detach().cpu().float() / 255.0
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0-255) or float (0-1), got dtype {images.dtype}")
    return images.detach().cpu().float()


def augment_grid(images, augment, *, n_variants: int = 8, seed: int = 0, class_names=None,
                 labels=None, path=None) -> Figure:
    """Draw each image (rows) as the original then ``n_variants`` augmented versions (columns).

    The augmentation runs on the CPU with one generator seeded with ``seed``, so the same call
    draws the same picture. Values are clamped to [0, 1] for display.

    Args:
        images: uint8 (0-255) or float (0-1) images, un-normalised (what the loader augments).
        augment: an augmentation or ``Compose`` (e.g. from ``parse_augment``).
        n_variants: number of augmented versions per image.
        seed: seed of the generator.
        class_names: names of the classes, to label the rows with ``labels``.
        labels: int64 (N,) labels; zeros when not given (mixup/cutmix then mix within the rows).
        path: where to write a PNG (parent folders are created), or None.

    Shape:
        images: (N, C, H, W) with C = 1 or 3 -> a figure of N rows x (1 + n_variants) columns.

    Raises:
        TypeError, ValueError: images not (N, C, H, W) uint8/float, or labels that do not match.

    Example:
        >>> fig = augment_grid(images[:4], parse_augment("flip,crop(4)"), path="augment.png")
    """
    n_variants = check_positive_int(n_variants, "n_variants")
    x = _to_unit_float(images)
    n = x.shape[0]
    y = torch.zeros(n, dtype=torch.long) if labels is None else torch.as_tensor(labels).cpu()
    check_batch(x, y)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        variants = [augment(x, y, generator=generator)[0] for _ in range(n_variants)]
    columns = [x, *variants]

    cell = 1.3
    fig = Figure(figsize=(cell * len(columns), cell * n), layout="constrained")
    axes = fig.subplots(n, len(columns), squeeze=False)
    for row in range(n):
        for col, batch in enumerate(columns):
            ax = axes[row][col]
            picture = batch[row].clamp(0.0, 1.0)
            if picture.shape[0] == 1:
                ax.imshow(picture[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(picture.permute(1, 2, 0).numpy())  # (C, H, W) -> (H, W, C)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("original" if col == 0 else f"aug {col}", fontsize=8)
        if labels is not None:
            label = int(y[row])
            name = class_names[label] if class_names is not None else str(label)
            axes[row][0].set_ylabel(name, fontsize=8)
    spec = augment.to_spec() if hasattr(augment, "to_spec") else type(augment).__name__
    fig.suptitle(spec, fontsize=9)
    if path is not None:
        _save_png(fig, Path(path))
    return fig


def _save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG through a temporary file, so no reader sees half a picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
    logger.info("wrote %s", path)
