"""Convolution as a matrix: the weight matrix that a conv layer secretly is.

A convolution is a linear map, so it equals a (very sparse) matrix multiplication: each output
value is one row, each input pixel one column. Every row holds the same few kernel weights
(*shared weights*) at shifted places, and zeros everywhere else (*local connectivity*). A fully
connected layer on the same input would have a dense matrix of the same size.
"""
from __future__ import annotations

import torch

from cnnkit._checks import check_positive_int, standardize_tuple


def _as_weight(kernel) -> torch.Tensor:
    weight = torch.as_tensor(kernel, dtype=torch.float32)
    if weight.ndim == 2:
        return weight[None, None]  # (kh, kw) -> (1, 1, kh, kw)
    if weight.ndim != 4:
        raise ValueError(
            f"kernel must be (kh, kw) or (F, C, kh, kw), got shape {tuple(weight.shape)}"
        )
    return weight


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """O = floor((W - K + 2P) / S) + 1, the tutorials' output-size formula.

    Raises:
        ValueError: the kernel does not fit the padded input (O < 1).

    Example:
        >>> conv_output_size(32, 5, 1, 0)
        28
    """
    span = size - kernel + 2 * padding
    if span < 0:
        raise ValueError(
            f"kernel size {kernel} does not fit input size {size} with padding {padding}: "
            f"O = ({size} - {kernel} + 2*{padding})/{stride} + 1 < 1; add padding or use a smaller kernel"
        )
    return span // stride + 1


def conv_as_matrix(kernel, input_shape, *, stride=1, padding=0) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Build the matrix M such that ``M @ x.flatten()`` equals ``F.conv2d(x, kernel)``.

    Row ``f*Ho*Wo + i*Wo + j`` is output unit (f, i, j); column ``c*H*W + y*W + x`` is input pixel
    (c, y, x). The entry is the kernel weight ``w[f, c, y - i*S + P, x - j*S + P]`` when that index
    lies inside the kernel and 0 otherwise (zero padding simply drops the columns outside the image).

    Args:
        kernel: (kh, kw) for one channel in and out, or (F, C, kh, kw) like ``nn.Conv2d.weight``.
        input_shape: (C, H, W) of one input image.
        stride: int or (sh, sw).
        padding: int or (ph, pw) zeros on each side.

    Shape:
        M: (F*Ho*Wo, C*H*W) with Ho = floor((H - kh + 2P)/S) + 1, Wo likewise;
        out_shape: (F, Ho, Wo).

    Raises:
        ValueError: kernel channels differ from the input's, or the kernel does not fit.

    Example:
        >>> m, out = conv_as_matrix(torch.ones(3, 3), (1, 4, 4))
        >>> m.shape, out
        (torch.Size([4, 16]), (1, 2, 2))
    """
    weight = _as_weight(kernel)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
    channels, height, width = (check_positive_int(v, "input_shape") for v in input_shape)
    sh, sw = standardize_tuple(stride, 2, "stride")
    ph, pw = standardize_tuple(padding, 2, "padding", allow_zero=True)
    filters, kernel_channels, kh, kw = weight.shape
    if kernel_channels != channels:
        raise ValueError(
            f"kernel has {kernel_channels} input channels but input_shape {input_shape!r} has "
            f"{channels}; they must match"
        )
    out_h = conv_output_size(height, kh, sh, ph)
    out_w = conv_output_size(width, kw, sw, pw)

    # Every (output unit, kernel tap) pair as index grids of shape (F, Ho, Wo, C, kh, kw).
    f, i, j, c, ky, kx = torch.meshgrid(
        torch.arange(filters), torch.arange(out_h), torch.arange(out_w),
        torch.arange(channels), torch.arange(kh), torch.arange(kw), indexing="ij",
    )
    y = i * sh - ph + ky
    x = j * sw - pw + kx
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    rows = (f * out_h + i) * out_w + j
    cols = (c * height + y) * width + x
    matrix = torch.zeros(filters * out_h * out_w, channels * height * width, dtype=weight.dtype)
    matrix[rows[inside], cols[inside]] = weight[f[inside], c[inside], ky[inside], kx[inside]]
    return matrix, (filters, out_h, out_w)
