"""Activation layers (ReLU, leaky ReLU, tanh, sigmoid, GELU, softmax) and ``get_activation``.

Each works on any shape; the output shape equals the input shape. ``Softmax`` normalises over
``dim=1``: the classes of an (N, K) score matrix, or the channels of an (N, C, H, W) volume.
"""
from __future__ import annotations

import difflib

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers.base import Layer, format_token


class ReLU(Layer):
    """Rectified linear unit, max(0, x).

    Example:
        >>> ReLU()(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    token = "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class LeakyReLU(Layer):
    """Leaky ReLU: x for x > 0, ``negative_slope``·x otherwise.

    Args:
        negative_slope: slope for negative inputs (default 0.01).

    Example:
        >>> LeakyReLU(0.1)(torch.tensor([-1.0, 2.0]))
        tensor([-0.1000,  2.0000])
    """

    token = "leakyrelu"

    def __init__(self, negative_slope: float = 0.01, *, name: str | None = None):
        super().__init__(name=name)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"negative_slope must be a number such as 0.01, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def to_spec(self) -> str:
        args = [self.negative_slope] if self.negative_slope != 0.01 else []
        return format_token(self.token, args)


class Tanh(Layer):
    """Hyperbolic tangent, output in (−1, 1)."""

    token = "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class Sigmoid(Layer):
    """Logistic sigmoid 1 / (1 + e^−x), output in (0, 1)."""

    token = "sigmoid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


class GELU(Layer):
    """Gaussian error linear unit x·Φ(x) (exact, not the tanh approximation)."""

    token = "gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class Softmax(Layer):
    """Softmax over ``dim`` (default 1: the classes of (N, K) scores), outputs sum to 1.

    Training with ``cnnkit``'s cross-entropy wants raw scores (logits): keep the softmax for
    inference or use it only when the loss expects probabilities.

    Args:
        dim: the axis that sums to 1.
    """

    token = "softmax"

    def __init__(self, dim: int = 1, *, name: str | None = None):
        super().__init__(name=name)
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int axis such as 1, got {dim!r}")
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=self.dim)

    def to_spec(self) -> str:
        return format_token(self.token, kwargs={"dim": self.dim} if self.dim != 1 else None)


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU, "leakyrelu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU,
    "softmax": Softmax,
}
ACTIVATION_NAMES = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "softmax", "linear")


def get_activation(activation) -> nn.Module | None:
    """Resolve an ``activation=`` argument to a module (or None for a linear layer).

    Args:
        activation: a name ('relu', 'leaky_relu', 'tanh', 'sigmoid', 'gelu', 'softmax',
            'linear'), None (no activation) or an ``nn.Module``, returned as is.

    Raises:
        ValueError: unknown name (the message lists the valid ones and the closest match).
        TypeError: neither a string, None nor a module.

    Example:
        >>> get_activation("relu")
        ReLU()
    """
    if activation is None or isinstance(activation, nn.Module):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a name such as 'relu', a module or None, "
                        f"got {activation!r}")
    key = activation.strip().lower().replace("_", "").replace(" ", "")
    if key in ("linear", "none", "identity"):
        return None
    if key not in ACTIVATIONS:
        close = difflib.get_close_matches(activation.lower(), ACTIVATION_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown activation {activation!r}{hint}; "
                         f"expected one of {', '.join(ACTIVATION_NAMES)} or None")
    return ACTIVATIONS[key]()
