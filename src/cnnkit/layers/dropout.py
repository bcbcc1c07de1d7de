"""Dropout: randomly zero activations while training (inverted dropout)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit._checks import check_probability
from cnnkit.layers.base import Layer, format_token


class Dropout(Layer):
    """Inverted dropout: in training mode each value is zeroed with probability ``rate`` and the
    survivors are scaled by 1/(1 − rate), so the expected activation is unchanged and inference
    (``model.eval()``) is the identity with no rescaling.

    Args:
        rate: probability of dropping a value, in [0, 1) (default 0.5).

    Shape:
        Any; the output has the input's shape.

    Example:
        >>> layer = Dropout(0.5).eval()
        >>> layer(torch.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    token = "dropout"

    def __init__(self, rate: float = 0.5, *, name: str | None = None):
        super().__init__(name=name)
        self.rate = check_probability(rate, "rate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.rate, self.training)

    def to_spec(self) -> str:
        return format_token(self.token, [self.rate])

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
