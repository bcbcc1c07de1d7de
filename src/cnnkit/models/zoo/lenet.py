"""LeNet-5 (LeCun et al. 1998), the classic layout.

::

    conv1 6@5x5 -> act -> pool1 2x2 -> conv2 16@5x5 -> act -> pool2 2x2
    -> flatten -> fc1 120 -> act -> fc2 84 -> act -> fc3 num_classes

On its native 32x32 input: 32 -> 28 -> 14 -> 10 -> 5, so fc1 sees 16*5*5 = 400 values.
For 28x28 MNIST images the common variant pads the first conv by 2 (28 + 2*2 = 32), which gives
the same 400 values; ``padding=None`` picks that padding when a side of the input is below 32,
and 0 otherwise. The classic uses tanh and average-pool subsampling (``activation="relu"``,
``pool="max"`` give the modern variant). fc1's width follows from the input size, so the model
only takes the input size it was built for.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(ZooModel):
    """LeNet-5; build it with ``create("lenet5", ...)``.

    Args:
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        activation: "tanh" (classic) or "relu".
        pool: "avg" (classic subsampling) or "max".
        padding: zero padding of the first conv; None -> 2 if a side is below 32, else 0.

    Shape:
        (N, C, H, W) -> conv1 (N, 6, H + 2P - 4, ...) -> pool1 -> conv2 -> pool2 (N, 16, H', W')
        -> (N, 16*H'*W') -> (N, 120) -> (N, 84) -> (N, num_classes).

    Raises:
        ValueError: unknown activation or pool, or an input too small (names the minimum).

    Example:
        >>> create("lenet5", in_channels=1, input_size=28).fc1.in_features  # doctest: +SKIP
        400
    """

    classifier_path = "fc3"
    fixed_input_size = True

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 activation: str = "tanh", pool: str = "avg", padding: int | None = None):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        for arg, value, choices in (("activation", activation, _ACTIVATIONS),
                                    ("pool", pool, _POOLS)):
            if value not in choices:
                raise ValueError(f"{arg} must be one of {sorted(choices)!r}, got {value!r}")
        if padding is None:
            padding = 2 if min(input_size) < 32 else 0
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0 (2 turns 28x28 into LeNet's 32x32) "
                             f"or None to choose from the input size, got {padding!r}")
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding)
        self.act1 = _ACTIVATIONS[activation]()
        self.pool1 = _POOLS[pool](kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.act2 = _ACTIVATIONS[activation]()
        self.pool2 = _POOLS[pool](kernel_size=2, stride=2)
        height, width = check_input_size("lenet5", input_size, spatial_layers(self.named_modules()))
        self.fc1 = nn.Linear(16 * height * width, 120)
        self.act3 = _ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = _ACTIVATIONS[activation]()
        self.fc3 = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        return nn.Linear(84, num_classes)

    def feature_layers(self):
        """conv1 act1 pool1 conv2 act2 pool2: stages act1 (stride 1), act2 (2), pool2 (4)."""
        return [(name, getattr(self, name)) for name in
                ("conv1", "act1", "pool1", "conv2", "act2", "pool2")]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        return self.pool2(self.act2(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)  # (N, 16, H', W') -> (N, 16*H'*W')
        x = self.act4(self.fc2(self.act3(self.fc1(x))))
        return x if pre_logits else self.fc3(x)


@register("lenet5", description="LeNet-5 (LeCun et al. 1998): two 5x5 convs with subsampling, "
          "fc 120-84; 32x32 (28x28 MNIST gets padding 2)", default_input_size=32)
def lenet5(*, num_classes, in_channels, input_size, **kwargs) -> LeNet5:
    """LeNet-5, 61.7k parameters on 32x32x1 with 10 classes."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                  **kwargs)
