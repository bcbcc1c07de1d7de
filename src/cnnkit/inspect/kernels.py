"""Classic image kernels from the CNN tutorials, applied to any image or used as a fixed layer.

A convolution layer slides a small grid of weights (a *kernel* or *filter*) over the image and,
at every position, multiplies the kernel with the patch under it and sums the products. Before
networks learned their kernels, people wrote them by hand: blur, sharpen, edge detection, Sobel.
This module keeps those hand-written kernels in one registry, ``KERNELS``.

Note that CNN layers (``torch.nn.functional.conv2d`` and every deep-learning framework) compute a
*cross-correlation*: the kernel is not flipped. For the symmetric kernels here it makes no
difference; for Sobel it decides the sign. ``sobel-x`` below gives a positive response where the
image gets brighter from left to right.
"""
from __future__ import annotations

import difflib

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_positive_int

_CURVE = [
    [0, 0, 0, 0, 0, 30, 0],
    [0, 0, 0, 0, 30, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
]

KERNELS: dict[str, torch.Tensor] = {
    "identity": torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "box-blur": torch.ones(3, 3) / 9,
    "gaussian-blur": torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    # 5x5 binomial approximation of a Gaussian: outer([1, 4, 6, 4, 1]) / 256.
    "gaussian-blur-5": torch.outer(torch.tensor([1.0, 4, 6, 4, 1]), torch.tensor([1.0, 4, 6, 4, 1])) / 256,
    "sharpen": torch.tensor([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    # The tutorials' "0 / -1 / 4" high-pass (a Laplacian): zero on flat regions and linear ramps.
    "edge": torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]),
    "edge-8": torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    "sobel-x": torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel-y": torch.tensor([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "emboss": torch.tensor([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    # The "curve detector" of A. Deshpande's "A Beginner's Guide to Understanding Convolutional
    # Neural Networks" (2016): a 7x7 filter whose weights (30) trace a curve, so it responds
    # strongly only where the image contains that curve shape.
    "curve": torch.tensor(_CURVE, dtype=torch.float32),
}

KERNEL_DESCRIPTIONS: dict[str, str] = {
    "identity": "leaves the image unchanged",
    "box-blur": "average of the 3x3 neighbourhood (all weights 1/9)",
    "gaussian-blur": "weighted average, centre counts most (1 2 1 / 2 4 2 / 1 2 1, /16)",
    "gaussian-blur-5": "5x5 binomial Gaussian blur (outer([1 4 6 4 1]) / 256)",
    "sharpen": "boosts the centre against its 4 neighbours (0 -1 0 / -1 5 -1 / 0 -1 0)",
    "edge": "Laplacian high-pass: 0 on flat areas, large at edges (0 -1 0 / -1 4 -1 / 0 -1 0)",
    "edge-8": "Laplacian with diagonals (-1 everywhere, 8 in the centre)",
    "sobel-x": "horizontal gradient: responds to vertical edges (-1 0 1 / -2 0 2 / -1 0 1)",
    "sobel-y": "vertical gradient: responds to horizontal edges (-1 -2 -1 / 0 0 0 / 1 2 1)",
    "emboss": "directional relief effect (-2 -1 0 / -1 1 1 / 0 1 2)",
    "curve": "7x7 'curve detector' from the beginner's guide to CNNs (30s along a curve)",
}


def kernel_names() -> list[str]:
    """Names of the registered kernels, sorted.

    Example:
        >>> "sobel-x" in kernel_names()
        True
    """
    return sorted(KERNELS)


def get_kernel(name_or_array) -> torch.Tensor:
    """Return a kernel as a float32 tensor (kh, kw): a registered name or a 2-D array of weights.

    Raises:
        ValueError: an unknown name (the message lists the known ones) or a non-2-D array.
        TypeError: neither a string nor an array-like.

    Example:
        >>> get_kernel("box-blur").sum().item()
        1.0
    """
    if isinstance(name_or_array, str):
        if name_or_array not in KERNELS:
            close = difflib.get_close_matches(name_or_array, kernel_names(), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"kernel {name_or_array!r} is unknown; {hint}choose one of "
                             f"{kernel_names()}")
        return KERNELS[name_or_array].clone()
    try:
        kernel = torch.as_tensor(name_or_array, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"kernel must be a name from {kernel_names()} or a 2-D array, got {name_or_array!r}"
        ) from exc
    if kernel.ndim != 2 or min(kernel.shape) < 1:
        raise ValueError(f"kernel must be 2-D (kh, kw), got shape {tuple(kernel.shape)}")
    return kernel


def _as_float_image(image) -> torch.Tensor:
    """(H, W) or (C, H, W), uint8 (0-255, scaled to 0-1) or float -> float32 (C, H, W)."""
    tensor = torch.as_tensor(image)
    if tensor.ndim not in (2, 3):
        raise ValueError(
            f"image must be (H, W) or (C, H, W), got shape {tuple(tensor.shape)}; "
            "pass one image, not a batch"
        )
    tensor = tensor.float() / 255 if tensor.dtype == torch.uint8 else tensor.float()
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor  # (H, W) -> (1, H, W)


def _resolve_padding(padding, kernel_shape: tuple[int, int], stride: int) -> tuple[int, int]:
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        if stride != 1 or any(k % 2 == 0 for k in kernel_shape):
            raise ValueError(
                f"padding='same' needs stride 1 and an odd kernel size, got stride={stride!r} and "
                f"kernel size {kernel_shape!r}; pass an int padding instead"
            )
        return (kernel_shape[0] // 2, kernel_shape[1] // 2)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, 'same' or 'valid', got {padding!r}")
    return (padding, padding)


def apply_kernel(image, kernel, *, stride: int = 1, padding: int | str = 0) -> torch.Tensor:
    """Convolve every channel of an image with one kernel (as a CNN layer does: cross-correlation).

    Args:
        image: (H, W) or (C, H, W); uint8 is scaled to [0, 1], floats are used as they are.
        kernel: a name from ``kernel_names()`` or a 2-D array of weights (kh, kw).
        stride: step between kernel positions.
        padding: zeros added on every side (int), ``"valid"`` (= 0) or ``"same"`` (output size =
            input size; stride 1 and odd kernels only).

    Shape:
        (C, H, W) -> (C, Ho, Wo) (or (H, W) -> (Ho, Wo)), with
        Ho = floor((H - kh + 2P) / S) + 1 and Wo = floor((W - kw + 2P) / S) + 1.

    Raises:
        ValueError: unknown kernel, bad stride/padding, or a kernel larger than the padded image.

    Example:
        >>> apply_kernel(torch.ones(5, 5), "box-blur").shape
        torch.Size([3, 3])
    """
    stride = check_positive_int(stride, "stride")
    weights = get_kernel(kernel)
    x = _as_float_image(image)
    channels, height, width = x.shape
    pad = _resolve_padding(padding, tuple(weights.shape), stride)
    for size, k, p, axis in ((height, weights.shape[0], pad[0], "height"),
                             (width, weights.shape[1], pad[1], "width")):
        if size - k + 2 * p < 0:
            raise ValueError(
                f"kernel {axis} {k} does not fit the image {axis} {size} with padding {p}: "
                f"O = (W - K + 2P)/S + 1 = ({size} - {k} + 2*{p})/{stride} + 1 < 1; "
                "use a smaller kernel or more padding"
            )
    # One copy of the kernel per channel, applied separately (groups=C): (kh, kw) -> (C, 1, kh, kw)
    weight = weights.expand(channels, 1, *weights.shape)
    out = F.conv2d(x.unsqueeze(0), weight, stride=stride, padding=pad, groups=channels)[0]
    return out[0] if torch.as_tensor(image).ndim == 2 else out  # (1, Ho, Wo) -> (Ho, Wo)


def _centre_pad(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad a (kh, kw) kernel to ``size``, keeping it centred."""
    dh, dw = size[0] - kernel.shape[0], size[1] - kernel.shape[1]
    return F.pad(kernel, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def kernel_bank_conv(names, in_channels: int = 1) -> nn.Conv2d:
    """A frozen ``nn.Conv2d`` whose filters are named classic kernels: a hand-made first layer.

    Filter ``f`` applies kernel ``names[f]`` to the mean of the input channels (each input channel
    gets weight ``kernel / in_channels``), so an RGB image is filtered as its grey version. Kernels
    of different sizes are zero-padded (centred) to the largest; padding keeps the spatial size.

    Args:
        names: kernel names (or 2-D arrays), one per output channel.
        in_channels: channels of the input image (1 grey, 3 RGB).

    Shape:
        (N, in_channels, H, W) -> (N, len(names), H, W) for odd kernel sizes.

    Raises:
        ValueError: empty ``names`` or an unknown kernel name.

    Example:
        >>> conv = kernel_bank_conv(["sobel-x", "sobel-y"], in_channels=3)
        >>> conv(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 2, 8, 8])
    """
    in_channels = check_positive_int(in_channels, "in_channels")
    if isinstance(names, str) or len(names) == 0:
        raise ValueError(f"names must be a non-empty list of kernel names, got {names!r}")
    kernels = [get_kernel(name) for name in names]
    size = (max(k.shape[0] for k in kernels), max(k.shape[1] for k in kernels))
    bank = torch.stack([_centre_pad(k, size) for k in kernels])  # F x (kh, kw) -> (F, kh, kw)
    conv = nn.Conv2d(in_channels, len(kernels), size, padding=(size[0] // 2, size[1] // 2), bias=False)
    with torch.no_grad():
        # (F, kh, kw) -> (F, C, kh, kw): the same kernel on every input channel, averaged.
        conv.weight.copy_(bank.unsqueeze(1).expand(-1, in_channels, -1, -1) / in_channels)
    conv.weight.requires_grad_(False)
    return conv
