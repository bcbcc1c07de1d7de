"""2-D convolution in the tutorials' vocabulary: filters, kernel size, stride, zero padding."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.layers.activations import get_activation
from cnnkit.layers.base import WindowLayer, format_token


class Conv(WindowLayer):
    """2-D convolution: ``filters`` learned K×K×C filters slide over the input volume.

    Each filter spans the whole input depth C, so the layer holds ``filters × C/groups × K × K``
    weights plus ``filters`` biases; the output depth is ``filters``. A 1×1 convolution
    (``kernel_size=1``, "network in network") mixes channels at each pixel.

    Args:
        filters: number of filters = output depth.
        kernel_size: K, an int or (K_h, K_w).
        stride: S, an int or (S_h, S_w).
        padding: zeros added on each side: an int, (P_h, P_w), ``"valid"`` (0) or ``"same"``
            (output size ceil(W / S); asymmetric for even kernels, extra pixel bottom/right).
        dilation: D, spacing between kernel taps; the window spans D·(K − 1) + 1 pixels.
        groups: split input and output channels into this many independent groups.
        bias: add a learned bias per filter.
        activation: applied after the convolution: a name ('relu', ...), a module or None.
        in_channels: input depth C; when given the layer builds at once (plain PyTorch use),
            otherwise when its Sequential learns the input shape or at the first forward call.
        rounding: when O is not an integer: "warn" (the default) rounds down as PyTorch does
            and warns once (``cnnkit.errors.RoundingWarning``) with the rows/columns dropped;
            "floor" rounds down silently; "strict" refuses. None = the Sequential's choice.
        name: the layer's name in messages.

    Shape:
        Input (N, C, H, W), output (N, filters, H_out, W_out) with, per axis,
        O = (W − K + 2P)/S + 1 (K replaced by D·(K − 1) + 1 when dilated).

    Raises:
        ValueError: bad arguments; at build time a stride that does not fit ("strict" rounding),
            an output that shrinks to zero, or channels that do not divide by ``groups``.

    Example:
        >>> conv = Conv(32, 3, in_channels=1)
        >>> conv(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 32, 26, 26])
    """

    token = "conv"

    def __init__(self, filters: int, kernel_size=3, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, activation=None, in_channels: int | None = None,
                 rounding: str | None = None, *, name: str | None = None):
        super().__init__(kernel_size, stride, padding, dilation, rounding, name=name)
        self.filters = check_positive_int(filters, "filters")
        self.groups = check_positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"filters ({filters!r}) must be divisible by groups ({groups!r})")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.activation = get_activation(activation)
        self.in_channels: int | None = None
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if in_channels is not None:
            self._create_parameters(check_positive_int(in_channels, "in_channels"))
            self.built = True

    def _create_parameters(self, in_channels: int) -> None:
        self.in_channels = in_channels
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(self.filters, in_channels // self.groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(self.filters)) if self.use_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation (Kaiming-uniform weights, as ``nn.Conv2d``)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        self._require_image(input_shape)
        channels = input_shape[0]
        if self.in_channels is not None and channels != self.in_channels:
            raise ValueError(f"{self.label} was built for {self.in_channels} input channels, "
                             f"got an input of shape (C, H, W) = {input_shape!r}")
        if channels % self.groups:
            raise ValueError(f"{self.label}: input channels ({channels}) must be divisible by "
                             f"groups ({self.groups})")

    def _build(self, input_shape: tuple[int, ...]) -> None:
        self._create_parameters(input_shape[0])

    def _output_channels(self, in_channels: int) -> int:
        return self.filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.forward_linear(x)
        return out if self.activation is None else self.activation(out)

    def forward_linear(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution without ``activation`` (``Sequential`` runs a ReLU after the pooling).

        Shape:
            (N, C, H, W) -> (N, filters, H_out, W_out), O = (W − K + 2P)/S + 1 per axis.
        """
        self._ensure_built(x)
        top, bottom, left, right = self.pads(x.shape[-2], x.shape[-1])
        if top == bottom and left == right:
            out = F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation,
                           self.groups)
        else:
            x = F.pad(x, (left, right, top, bottom))
            out = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return out

    def to_spec(self) -> str:
        kwargs = {}
        if self.stride != (1, 1):
            kwargs["stride"] = self.stride
        kwargs.update(self._spec_padding())
        if self.dilation != (1, 1):
            kwargs["dilation"] = self.dilation
        if self.groups != 1:
            kwargs["groups"] = self.groups
        if not self.use_bias:
            kwargs["bias"] = False
        if self.activation is not None:
            kwargs["activation"] = self.activation
        kwargs.update(self._spec_rounding())
        return format_token(self.token, [self.filters, self.kernel_size], kwargs)

    def extra_repr(self) -> str:
        return (f"filters={self.filters}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, in_channels={self.in_channels}")
