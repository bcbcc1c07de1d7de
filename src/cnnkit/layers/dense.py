"""Flatten and fully connected (dense) layers."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_positive_int, format_shape_hwc
from cnnkit.layers.activations import get_activation
from cnnkit.layers.base import Layer, format_token


class _FlattenChannelsLast(torch.autograd.Function):
    """Flatten an NHWC-stored volume in C, H, W order, and hand its gradient back NHWC.

    ``x.flatten(1)`` on a channels-last tensor copies it into C, H, W order, and autograd
    returns the gradient in that (NCHW) layout. The layer before (ReLU, max-pool) then runs its
    backward on mixed layouts, a slow path: ReLU's backward took 475 µs instead of 36 µs per call
    in the mnist-fast net (bench/RESULTS.md). Converting the gradient once costs one copy.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.volume = x.shape
        return x.contiguous().flatten(1)  # (N, C, H, W) stored NHWC -> (N, C*H*W)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # (N, C*H*W) -> (N, C, H, W) stored NHWC, the layout of the forward input
        return grad.reshape(ctx.volume).contiguous(memory_format=torch.channels_last)


class Flatten(Layer):
    """Unroll each volume into one vector, channel by channel (PyTorch's C, H, W order).

    The order is the same whatever the memory layout; for a channels-last input under autograd
    the gradient goes back channels-last too (see ``_FlattenChannelsLast``).

    Shape:
        (N, C, H, W) -> (N, C·H·W); a flat (N, F) input passes through.

    Example:
        >>> Flatten()(torch.zeros(2, 32, 13, 13)).shape
        torch.Size([2, 5408])
    """

    token = "flatten"

    def compute_output_shape(self, input_shape) -> tuple[int, ...]:
        """(C, H, W) -> (C·H·W,)."""
        return (math.prod(input_shape),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.ndim == 4 and x.requires_grad and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            return _FlattenChannelsLast.apply(x)  # (N, C, H, W) NHWC -> (N, C*H*W)
        return x.flatten(1)  # (N, C, H, W) -> (N, C*H*W)


class Dense(Layer):
    """Fully connected layer: every output unit sees every input feature, y = x·Wᵀ + b.

    Args:
        units: number of output units (neurons); the last layer has one per class.
        activation: a name ('relu', 'softmax', ...), a module or None.
        bias: add a learned bias per unit.
        in_features: F; when given the layer builds at once, otherwise it learns F from the
            input shape (e.g. 5408 after a 13×13×32 volume is flattened).
        name: the layer's name in messages.

    Shape:
        (N, F) -> (N, units); parameters: units·F weights + units biases.

    Raises:
        ValueError: the input is an image volume (add ``Flatten()`` first) or F disagrees with
            the built ``in_features``.

    Example:
        >>> Dense(10, in_features=5408)(torch.zeros(2, 5408)).shape
        torch.Size([2, 10])
    """

    token = "fc"

    def __init__(self, units: int, activation=None, bias: bool = True,
                 in_features: int | None = None, *, name: str | None = None):
        super().__init__(name=name)
        self.units = check_positive_int(units, "units")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.activation = get_activation(activation)
        self.in_features: int | None = None
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if in_features is not None:
            self._create_parameters(check_positive_int(in_features, "in_features"))
            self.built = True

    def _create_parameters(self, in_features: int) -> None:
        self.in_features = in_features
        self.weight = nn.Parameter(torch.empty(self.units, in_features))
        self.bias = nn.Parameter(torch.empty(self.units)) if self.use_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation (as ``nn.Linear``)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.label} needs a flat input (F,), got the volume "
                f"{format_shape_hwc(input_shape)} (C, H, W = {input_shape!r}); "
                "add Flatten() before it"
            )
        if self.in_features is not None and input_shape[0] != self.in_features:
            raise ValueError(f"{self.label} was built for {self.in_features} input features, "
                             f"got {input_shape[0]}")

    def _build(self, input_shape: tuple[int, ...]) -> None:
        self._create_parameters(input_shape[0])

    def compute_output_shape(self, input_shape) -> tuple[int, ...]:
        """(F,) -> (units,)."""
        self._check_input(tuple(input_shape))
        return (self.units,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_built(x)
        out = F.linear(x, self.weight, self.bias)
        return out if self.activation is None else self.activation(out)

    def to_spec(self) -> str:
        kwargs = {}
        if self.activation is not None:
            kwargs["activation"] = self.activation
        if not self.use_bias:
            kwargs["bias"] = False
        return format_token(self.token, [self.units], kwargs)

    def extra_repr(self) -> str:
        return f"units={self.units}, in_features={self.in_features}"
