"""Network in Network (Lin et al. 2013), the ImageNet layout of "Dive into Deep Learning".

An mlpconv block is a KxK conv followed by two 1x1 convs (a small MLP slid over every pixel),
each with ReLU. There is no fully connected layer: the last block has one channel per class and
global average pooling turns each channel into a logit::

    blocks: mlpconv 96 (11x11/4) -> maxpool 3x3/2 -> mlpconv 256 (5x5, pad 2) -> maxpool 3x3/2
            -> mlpconv 384 (3x3, pad 1) -> maxpool 3x3/2 -> dropout 0.5
    classifier: mlpconv num_classes (3x3, pad 1) -> global average pool -> logits

``features(x)`` (the embedding) is the global average of the 384-channel volume that enters the
classifier block. Inputs need at least 67x67 pixels.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register


def mlpconv(in_channels: int, out_channels: int, kernel_size: int, stride: int,
            padding: int) -> nn.Sequential:
    """KxK conv -> ReLU -> 1x1 conv -> ReLU -> 1x1 conv -> ReLU.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = (H - K + 2P)/S + 1.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
    )


class NiN(ZooModel):
    """Network in Network; build it with ``create("nin", ...)``.

    Args:
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        dropout: dropout probability before the classifier block.

    Shape:
        (N, C, H, W) -> forward_features (N, 384, H', W') -> classifier (N, num_classes, H', W')
        -> global average pool -> (N, num_classes).

    Raises:
        ValueError: an input smaller than 67x67.

    Example:
        >>> create("nin", num_classes=10, input_size=224)  # doctest: +SKIP
    """

    classifier_path = "classifier"

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 dropout: float = 0.5):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        self.blocks = nn.Sequential(
            mlpconv(in_channels, 96, kernel_size=11, stride=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            mlpconv(96, 256, kernel_size=5, stride=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            mlpconv(256, 384, kernel_size=3, stride=1, padding=1),
            nn.MaxPool2d(3, stride=2),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = self._make_classifier(num_classes)
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_size = check_input_size(
            "nin", input_size, spatial_layers(self.named_modules()),
            hint="For smaller images use 'resnet18' (small stem) or 'airbench'.")

    def _make_classifier(self, num_classes: int) -> nn.Sequential:
        return mlpconv(384, num_classes, kernel_size=3, stride=1, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(self.global_pool(x), 1)  # (N, 384, 1, 1) -> (N, 384)
        x = self.classifier(self.dropout(x))
        return torch.flatten(self.global_pool(x), 1)  # (N, K, 1, 1) -> (N, K)


@register("nin", description="Network in Network (Lin et al. 2013): mlpconv blocks of 1x1 "
          "convs, global average pooling instead of fc; inputs >= 67x67", default_input_size=224)
def nin(*, num_classes, in_channels, input_size, **kwargs) -> NiN:
    """NiN, D2L's ImageNet layout."""
    return NiN(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **kwargs)
