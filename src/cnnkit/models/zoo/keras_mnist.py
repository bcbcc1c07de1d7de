"""The small CNN of the Keras and PyTorch MNIST examples (99 % on MNIST in a few epochs).

::

    conv1 32@3x3 -> relu -> conv2 64@3x3 -> relu -> pool 2x2 -> dropout 0.25
    -> flatten -> fc1 128 -> relu -> dropout 0.5 -> fc2 num_classes

On 28x28: 28 -> 26 -> 24 -> 12, so fc1 sees 64*12*12 = 9216 values (fc1 has 1.18M of the
model's 1.2M parameters). fc1's width follows from the input size.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register
from cnnkit.models.relu_pool import reorders, unhooked


class KerasMnistCNN(ZooModel):
    """Two 3x3 convs, a max pool and two fully connected layers.

    Args:
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.

    Shape:
        (N, C, H, W) -> (N, 32, H-2, W-2) -> (N, 64, H-4, W-4)
        -> pool (N, 64, (H-4)//2, (W-4)//2) -> (N, 64*H'*W') -> (N, 128) -> (N, num_classes).

    Raises:
        ValueError: an input smaller than 6x6.

    Example:
        >>> create("keras_mnist", in_channels=1).fc1.in_features  # doctest: +SKIP
        9216
    """

    classifier_path = "fc2"
    fixed_input_size = True

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int]):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.dropout1 = nn.Dropout(0.25)
        height, width = check_input_size("keras_mnist", input_size,
                                         spatial_layers(self.named_modules()))
        self.fc1 = nn.Linear(64 * height * width, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        return nn.Linear(128, num_classes)

    def feature_layers(self):
        """conv1 relu conv2 relu pool: stages relu2 (stride 1) and pool (2)."""
        return [("conv1", self.conv1), ("relu1", torch.relu), ("conv2", self.conv2),
                ("relu2", torch.relu), ("pool", self.pool)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(torch.relu(self.conv1(x)))  # (N, 64, H-4, W-4) before its ReLU
        if reorders(self, x) and unhooked(self.pool):
            return torch.relu(self.pool(x))  # the same values, ReLU on a quarter of them
        return self.pool(torch.relu(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.dropout1(x), 1)  # (N, 64, H', W') -> (N, 64*H'*W')
        x = torch.relu(self.fc1(x))
        return x if pre_logits else self.fc2(self.dropout2(x))


@register("keras_mnist", description="The Keras/PyTorch MNIST example CNN: conv 32, conv 64, "
          "max pool, dropout, fc 128; 28x28", default_input_size=28)
def keras_mnist(*, num_classes, in_channels, input_size) -> KerasMnistCNN:
    """The Keras MNIST CNN, 1.2M parameters on 28x28x1 with 10 classes."""
    return KerasMnistCNN(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
