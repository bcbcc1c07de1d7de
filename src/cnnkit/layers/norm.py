"""Batch normalisation over channels (2-D on (C, H, W) volumes) or features (1-D on (F,))."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_positive_int, check_probability
from cnnkit.layers.base import Layer, format_token


class BatchNorm(Layer):
    """Batch normalisation: y = (x − mean) / sqrt(var + eps) · weight + bias per channel.

    In training mode mean and var are the batch's (per channel over N, H, W) and running
    averages are updated: running = (1 − momentum)·running + momentum·batch (PyTorch's
    convention; Keras' momentum 0.99 is 0.01 here). In eval mode the running averages are used.
    Parameter and buffer names match ``nn.BatchNorm2d``/``nn.BatchNorm1d``.

    Args:
        momentum: weight of the new batch in the running averages, in [0, 1].
        eps: added to the variance for numerical safety.
        num_features: C (or F); when given the layer builds at once.

    Shape:
        (N, C, H, W) -> same, or (N, F) -> same.

    Example:
        >>> BatchNorm(num_features=8)(torch.randn(4, 8, 5, 5)).shape
        torch.Size([4, 8, 5, 5])
    """

    token = "bn"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, num_features: int | None = None,
                 *, name: str | None = None):
        super().__init__(name=name)
        self.momentum = check_probability(momentum, "momentum", inclusive_high=True)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
            raise ValueError(f"eps must be a small positive number such as 1e-5, got {eps!r}")
        self.eps = float(eps)
        self.num_features: int | None = None
        if num_features is not None:
            self._create_parameters(check_positive_int(num_features, "num_features"))
            self.built = True

    def _create_parameters(self, num_features: int) -> None:
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) not in (1, 3):
            raise ValueError(f"{self.label} needs (C, H, W) or (F,) inputs, got {input_shape!r}")
        if self.num_features is not None and input_shape[0] != self.num_features:
            raise ValueError(f"{self.label} was built for {self.num_features} channels, "
                             f"got an input of shape {input_shape!r}")

    def _build(self, input_shape: tuple[int, ...]) -> None:
        self._create_parameters(input_shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_built(x)
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)

    def to_spec(self) -> str:
        kwargs = {}
        if self.momentum != 0.1:
            kwargs["momentum"] = self.momentum
        if self.eps != 1e-5:
            kwargs["eps"] = self.eps
        return format_token(self.token, kwargs=kwargs)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, momentum={self.momentum}, eps={self.eps}"
