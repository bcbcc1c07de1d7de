"""The learned kernels (filters) of a conv layer, arranged as tiles for a picture.

Works on any ``nn.Module``: a conv layer is an ``nn.Conv2d`` or any module with a 4-D ``weight``
parameter (F, C/groups, kh, kw) and a ``kernel_size`` attribute (cnnkit's own conv layer).
Layers are named by their ``model.named_modules()`` names (``"0"``, ``"features.3"``, ...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def is_conv_layer(module: nn.Module) -> bool:
    """True for a 2-D convolution: ``nn.Conv2d`` or a module with a 4-D weight and ``kernel_size``."""
    if isinstance(module, nn.Conv2d):
        return True
    weight = getattr(module, "weight", None)
    return (isinstance(weight, torch.Tensor) and weight.ndim == 4
            and hasattr(module, "kernel_size"))


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv layer of ``model`` as ``(name, module)``, in registration (forward) order.

    Example:
        >>> [name for name, _ in conv_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))]
        ['0']
    """
    return [(name, module) for name, module in model.named_modules() if is_conv_layer(module)]


def find_conv_layer(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Module]:
    """The conv layer called ``layer`` (default: the first one) as ``(name, module)``.

    Raises:
        ValueError: the model has no conv layer, or ``layer`` is not the name of one (the
            message lists the conv layer names).
    """
    layers = conv_layers(model)
    if not layers:
        raise ValueError(f"model {type(model).__name__} has no conv layer (nn.Conv2d or a module "
                         "with a 4-D weight and kernel_size)")
    if layer is None:
        return layers[0]
    for name, module in layers:
        if name == layer:
            return name, module
    raise ValueError(f"layer {layer!r} is not a conv layer of the model; conv layers: "
                     f"{[name for name, _ in layers]}")


@dataclass(frozen=True)
class FilterGrid:
    """Tiles of one conv layer's kernels, ready to draw.

    Attributes:
        layer: the layer's name in ``named_modules()``.
        tiles: (T, kh, kw) raw weights, or (T, kh, kw, 3) RGB in [0, 1] when ``rgb``.
        labels: one caption per tile (``"f3"`` or ``"f3 c1"``: filter 3, input channel 1).
        nrows, ncols: grid layout (``nrows * ncols >= T``).
        rgb: one colour tile per filter (a first layer on 3-channel images).
        vmin, vmax: the weight values that the darkest and brightest colours stand for.
        weight_shape: (F, C, kh, kw) of the whole layer.
    """

    layer: str
    tiles: np.ndarray
    labels: tuple[str, ...]
    nrows: int
    ncols: int
    rgb: bool
    vmin: float
    vmax: float
    weight_shape: tuple[int, int, int, int]


def filter_grid(model: nn.Module, layer: str | None = None, *, max_filters: int = 64,
                max_channels: int = 8) -> FilterGrid:
    """Arrange the kernels of a conv layer as image tiles.

    A layer that sees 3 input channels (the first layer of an RGB model) gives one colour tile
    per filter: its weights min-max scaled together to [0, 1] and shown as R, G, B. Any other
    layer gives one grey tile per (filter, input channel) pair, one row per filter, with the
    raw weights on a shared scale symmetric around 0 (``vmin = -vmax``).

    Args:
        model: any module with at least one conv layer.
        layer: the conv layer's name; default the first conv layer.
        max_filters: show at most this many filters (the first ones).
        max_channels: per filter, show at most this many input channels (grey layers only).

    Shape:
        weight (F, C, kh, kw) -> tiles (min(F, max_filters), kh, kw, 3) when C == 3,
        else (min(F, max_filters) * min(C, max_channels), kh, kw).

    Raises:
        ValueError: no such conv layer.

    Example:
        >>> grid = filter_grid(nn.Sequential(nn.Conv2d(3, 32, 5)))
        >>> grid.tiles.shape, grid.rgb
        ((32, 5, 5, 3), True)
    """
    name, module = find_conv_layer(model, layer)
    weight = module.weight.detach().float().cpu()
    filters, channels, kh, kw = weight.shape
    shown = weight[:max_filters]
    if channels == 3:
        low, high = shown.min().item(), shown.max().item()
        scaled = (shown - low) / (high - low) if high > low else torch.full_like(shown, 0.5)
        tiles = scaled.permute(0, 2, 3, 1).numpy()  # (F, 3, kh, kw) -> (F, kh, kw, 3)
        labels = tuple(f"f{f}" for f in range(tiles.shape[0]))
        ncols = math.ceil(math.sqrt(tiles.shape[0]))
        nrows = math.ceil(tiles.shape[0] / ncols)
        return FilterGrid(name, tiles, labels, nrows, ncols, True, low, high,
                          (filters, channels, kh, kw))
    shown = shown[:, :max_channels]
    n_filters, n_channels = shown.shape[0], shown.shape[1]
    tiles = shown.reshape(n_filters * n_channels, kh, kw).numpy()  # (F, C, kh, kw) -> (F*C, kh, kw)
    if n_channels == 1:  # one grey tile per filter: lay them out as a square
        labels = tuple(f"f{f}" for f in range(n_filters))
        ncols = math.ceil(math.sqrt(n_filters))
        nrows = math.ceil(n_filters / ncols)
    else:  # one row per filter, one column per input channel
        labels = tuple(f"f{f} c{c}" for f in range(n_filters) for c in range(n_channels))
        nrows, ncols = n_filters, n_channels
    scale = max(float(np.abs(tiles).max()), 1e-12)
    return FilterGrid(name, tiles, labels, nrows, ncols, False, -scale, scale,
                      (filters, channels, kh, kw))
