"""Image grids: learned filters, feature maps layer by layer, and any list of images."""
from __future__ import annotations

import math
import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from cnnkit.inspect.filters import FilterGrid
from cnnkit.viz._figure import image_for_display, mosaic, new_figure, save_figure, to_numpy


def plot_filters(grid: FilterGrid, *, path: str | os.PathLike | None = None) -> Figure:
    """Draw a conv layer's kernels (from ``cnnkit.inspect.filters.filter_grid``) as tiles.

    RGB first layers are drawn in colour (the title gives the weight range mapped to the colours);
    other layers in a blue-white-red scale symmetric around 0, with a colour bar of weight values.

    Example:
        >>> from cnnkit.inspect.filters import filter_grid
        >>> import torch.nn as nn
        >>> fig = plot_filters(filter_grid(nn.Sequential(nn.Conv2d(3, 8, 3))))
    """
    fill = 1.0 if grid.rgb else np.nan
    image = mosaic(grid.tiles, grid.nrows, grid.ncols, fill=fill)
    fig = new_figure(min(2.0 + 0.7 * grid.ncols, 14.0), min(1.5 + 0.7 * grid.nrows, 14.0))
    ax = fig.subplots()
    f, c, kh, kw = grid.weight_shape
    title = f"Filters of layer {grid.layer!r}: {f} filters of {kh}x{kw}x{c}"
    if grid.rgb:
        ax.imshow(image, interpolation="nearest")
        title += f"\ncolour = weights, {grid.vmin:.3g} (black) to {grid.vmax:.3g} (white) per RGB channel"
    else:
        # Grey gaps between tiles, so they cannot be mistaken for zero weights (white).
        cmap = matplotlib.colormaps["bwr"].with_extremes(bad="0.55")
        shown = ax.imshow(image, cmap=cmap, vmin=grid.vmin, vmax=grid.vmax, interpolation="nearest")
        fig.colorbar(shown, ax=ax, label="weight value", shrink=0.8)
        if grid.ncols > 1 and len(grid.labels) > grid.ncols:
            title += "\nrows: filters, columns: input channels"
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def plot_feature_maps(maps, *, max_channels: int = 32, path: str | os.PathLike | None = None) -> Figure:
    """Draw every channel of every recorded layer output, one panel per layer, in forward order.

    Args:
        maps: ``(name, kind, tensor (C, H, W))`` items from ``cnnkit.inspect.feature_maps``.
        max_channels: channels drawn per layer (the first ones).
        path: also write the figure as a PNG here.

    Raises:
        ValueError: ``maps`` is empty.

    Example:
        >>> import torch
        >>> fig = plot_feature_maps([("0", "conv", torch.rand(4, 6, 6))])
    """
    maps = list(maps)
    if not maps:
        raise ValueError("maps is empty: the model produced no spatial (C, H, W) layer outputs")
    fig = new_figure(8.0, 2.6 * len(maps))
    for ax, (name, kind, tensor) in zip(fig.subplots(len(maps), 1, squeeze=False)[:, 0], maps):
        values = to_numpy(tensor).astype(np.float64)
        channels = values.shape[0]
        shown = values[:max_channels]
        ncols = min(16, math.ceil(math.sqrt(shown.shape[0] * 4)))
        nrows = math.ceil(shown.shape[0] / ncols)
        image = ax.imshow(mosaic(shown, nrows, ncols), cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="activation", shrink=0.9)
        more = f", first {shown.shape[0]} shown" if channels > shown.shape[0] else ""
        c, h, w = values.shape
        ax.set_title(f"after {kind} layer {name!r}: {h}x{w}x{c} ({channels} channels{more})",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Feature maps, layer by layer (what the network sees)")
    return save_figure(fig, path)


def plot_image_grid(images, titles=None, *, ncols: int = 8, suptitle: str | None = None,
                    path: str | os.PathLike | None = None) -> Figure:
    """Draw images (N, C, H, W) or a list of (C, H, W) / (H, W) in a grid with optional captions.

    Raises:
        ValueError: no images, or ``titles`` of the wrong length.

    Example:
        >>> import torch
        >>> fig = plot_image_grid(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), ["a", "b", "c"])
    """
    images = list(images)
    if not images:
        raise ValueError("images is empty; pass at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles has {len(titles)} entries for {len(images)} images")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig = new_figure(1.6 * ncols, 1.8 * nrows + (0.4 if suptitle else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)  # (rows, cols) -> (rows*cols,)
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index >= len(images):
            continue
        array, cmap = image_for_display(images[index])
        ax.imshow(array, cmap=cmap, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[index]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)
