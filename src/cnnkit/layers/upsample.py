"""Upsampling layers for segmentation decoders: ``Upsample``, ``ConvTranspose`` (deconv)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_positive_int, standardize_tuple
from cnnkit.layers.base import Layer, format_token

_MODES = ("nearest", "bilinear")


class Upsample(Layer):
    """Resize an image volume by an integer factor (nearest or bilinear), no parameters.

    Args:
        scale_factor: int >= 1, the same for height and width.
        mode: ``"nearest"`` (default) or ``"bilinear"`` (``align_corners=False``).

    Shape:
        (C, H, W) -> (C, H·s, W·s).

    Raises:
        ValueError/TypeError: a scale factor below 1 or an unknown mode.

    Example:
        >>> Upsample(2).compute_output_shape((3, 4, 5))
        (3, 8, 10)
    """

    token = "upsample"

    def __init__(self, scale_factor: int = 2, mode: str = "nearest", *, name: str | None = None):
        super().__init__(name=name)
        self.scale_factor = check_positive_int(scale_factor, "scale_factor")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES!r}, got {mode!r}")
        self.mode = mode

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        self._require_image(input_shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(int(d) for d in input_shape)
        self._check_input(shape)
        c, h, w = shape
        return (c, h * self.scale_factor, w * self.scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_built(x)
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.scale_factor, mode="nearest")
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear",
                             align_corners=False)

    def to_spec(self) -> str:
        args = [self.scale_factor] + ([self.mode] if self.mode != "nearest" else [])
        return format_token(self.token, args)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"


class ConvTranspose(Layer):
    """Transposed 2-D convolution ("deconvolution"), learnable upsampling.

    Args:
        filters: output channels.
        kernel_size: K, int or (kh, kw).
        stride: S, int or (sh, sw).
        padding: P, int or (ph, pw), removed from each side of the full output.
        output_padding: extra rows/columns on the bottom/right, each < stride.
        bias: add a learnable bias.
        in_channels: give it to create the parameters now instead of at build time.

    Shape:
        (C, H, W) -> (filters, H', W') with O = (W − 1)·S − 2P + K + output_padding per axis.

    Raises:
        ValueError/TypeError: non-positive sizes, output_padding >= stride, an output size < 1.

    Example:
        >>> ConvTranspose(8, 2, stride=2).compute_output_shape((4, 5, 5))
        (8, 10, 10)
    """

    token = "convtranspose"
    transposed = True  # as nn.ConvTranspose2d: receptive-field rules treat it as upsampling

    def __init__(self, filters: int, kernel_size=2, stride=1, padding=0, output_padding=0,
                 bias: bool = True, in_channels: int | None = None, *, name: str | None = None):
        super().__init__(name=name)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = standardize_tuple(kernel_size, 2, "kernel_size")
        self.stride = standardize_tuple(stride, 2, "stride")
        self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)
        self.output_padding = standardize_tuple(output_padding, 2, "output_padding",
                                                allow_zero=True)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"output_padding must be smaller than stride {self.stride!r}, "
                             f"got {output_padding!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.in_channels: int | None = None
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if in_channels is not None:
            self._create_parameters(check_positive_int(in_channels, "in_channels"))
            self.built = True

    def _create_parameters(self, in_channels: int) -> None:
        self.in_channels = in_channels
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(in_channels, self.filters, kh, kw))
        self.bias = nn.Parameter(torch.empty(self.filters)) if self.use_bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * kh * kw
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        self._require_image(input_shape)
        if self.in_channels is not None and input_shape[0] != self.in_channels:
            raise ValueError(f"{self.label} was built for {self.in_channels} input channels, "
                             f"got an input of shape (C, H, W) = {input_shape!r}")

    def _build(self, input_shape: tuple[int, ...]) -> None:
        self._create_parameters(input_shape[0])

    def compute_output_shape(self, input_shape):
        shape = tuple(int(d) for d in input_shape)
        self._check_input(shape)
        sizes = [(w - 1) * s - 2 * p + k + op for w, s, p, k, op in
                 zip(shape[1:], self.stride, self.padding, self.kernel_size, self.output_padding)]
        if min(sizes) < 1:
            raise ValueError(f"{self.label}: input {shape!r} gives an output size {sizes!r} < 1; "
                             f"reduce padding {self.padding!r}")
        return (self.filters, *sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_built(x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding)

    def to_spec(self) -> str:
        kwargs = {}
        if self.padding != (0, 0):
            kwargs["padding"] = self.padding
        if self.output_padding != (0, 0):
            kwargs["output_padding"] = self.output_padding
        if not self.use_bias:
            kwargs["bias"] = False
        return format_token(self.token, [self.filters, self.kernel_size, self.stride], kwargs)

    def extra_repr(self) -> str:
        return (f"filters={self.filters}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, in_channels={self.in_channels}")
