"""Pictures of convolution itself: a kernel before/after, and convolution as a matrix."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from cnnkit.viz._figure import image_for_display, new_figure, save_figure, to_numpy


def plot_kernel_result(before, after, kernel, *, name: str = "kernel", stride: int = 1,
                       padding: int | str = 0, path: str | os.PathLike | None = None) -> Figure:
    """Three panels: the input image, the kernel's weights written out, and the filtered output.

    Args:
        before: the input (C, H, W) or (H, W).
        after: the output of ``cnnkit.inspect.kernels.apply_kernel`` (same rank).
        kernel: (kh, kw) weights.
        name, stride, padding: for the titles.
        path: also write the figure as a PNG here.

    Example:
        >>> import torch
        >>> from cnnkit.inspect.kernels import apply_kernel, get_kernel
        >>> x = torch.rand(16, 16)
        >>> fig = plot_kernel_result(x, apply_kernel(x, "edge"), get_kernel("edge"), name="edge")
    """
    weights = to_numpy(kernel).astype(np.float64)
    picture, cmap = image_for_display(before)
    out = to_numpy(after).astype(np.float64)
    fig = new_figure(12.0, 4.2)
    left, middle, right = fig.subplots(1, 3)
    left.imshow(picture, cmap=cmap)
    left.set_title(f"before: {picture.shape[0]}x{picture.shape[1]}")
    scale = max(float(np.abs(weights).max()), 1e-12)
    middle.imshow(weights, cmap="bwr", vmin=-scale, vmax=scale)
    if weights.size <= 81:
        for (row, col), value in np.ndenumerate(weights):
            middle.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=8)
    middle.set_title(f"kernel {name!r} ({weights.shape[0]}x{weights.shape[1]})")
    middle.set_xticks([])
    middle.set_yticks([])
    if out.ndim == 3:
        # One map per channel: show the mean over channels, (C, Ho, Wo) -> (Ho, Wo)
        out = out.mean(axis=0)
    shown = right.imshow(out, cmap="gray")
    fig.colorbar(shown, ax=right, label="response", shrink=0.8)
    right.set_title(f"after: {out.shape[0]}x{out.shape[1]} (stride {stride}, padding {padding})")
    for ax in (left, right):
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    fig.suptitle("Convolution (cross-correlation, as in CNN layers): O = (W - K + 2P)/S + 1")
    return save_figure(fig, path)


def plot_conv_matrix(matrix, input_shape, out_shape, *, path: str | os.PathLike | None = None) -> Figure:
    """Draw the matrix of ``cnnkit.inspect.conv_matrix.conv_as_matrix``: rows = outputs, columns = pixels.

    Zeros are white, so the diagonal bands of shared weights stand out; the title gives the share
    of non-zero entries (local connectivity) and how many distinct values appear (weight sharing).

    Example:
        >>> import torch
        >>> from cnnkit.inspect.conv_matrix import conv_as_matrix
        >>> m, out = conv_as_matrix(torch.ones(3, 3), (1, 4, 4))
        >>> fig = plot_conv_matrix(m, (1, 4, 4), out)
    """
    values = to_numpy(matrix).astype(np.float64)
    rows, cols = values.shape
    nonzero = np.count_nonzero(values)
    distinct = np.unique(values[values != 0]).size
    fig = new_figure(min(4.0 + 0.25 * cols, 14.0), min(4.0 + 0.25 * rows, 12.0))
    ax = fig.subplots()
    scale = max(float(np.abs(values).max()), 1e-12)
    shown = ax.imshow(np.where(values == 0, np.nan, values), cmap="bwr", vmin=-scale, vmax=scale,
                      interpolation="nearest")
    fig.colorbar(shown, ax=ax, label="weight (white = 0)", shrink=0.8)
    ax.set_xlabel(f"input pixel (C*H*W flattened, input C, H, W = {tuple(input_shape)})")
    ax.set_ylabel(f"output unit (F*Ho*Wo flattened,\noutput F, Ho, Wo = {tuple(out_shape)})")
    ax.set_title(f"Convolution as a {rows}x{cols} matrix: {nonzero / values.size:.0%} non-zero, "
                 f"{distinct} distinct weights (shared)", fontsize=10)
    return save_figure(fig, path)
