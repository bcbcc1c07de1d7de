"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler & Fergus 2013), torchvision-style names.

Both are ``features`` (five convs, three 3x3/2 max pools) -> ``avgpool`` (AdaptiveAvgPool2d((6,
6))) -> ``classifier`` (Dropout, Linear 9216->4096, ReLU, Dropout, Linear 4096->4096, ReLU,
Linear -> num_classes). AlexNet is torchvision's single-GPU version (64/192/384/256/256 filters,
no local response normalisation), so its weights load. ZFNet is AlexNet with the smaller first
filters the paper's visualisations motivated: 96 filters of 7x7 with stride 2, then 256 of 5x5
with stride 2 (LRN omitted, as in torchvision's AlexNet).

The first layers shrink the image fast: AlexNet needs at least 63x63 and ZFNet 53x53 pixels.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit._checks import check_positive_int, check_probability
from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register
from cnnkit.models.relu_pool import reorders, run_layers, unhooked

_HINT = "For 28x28 or 32x32 images use 'lenet5', 'keras_mnist', 'resnet18' or 'airbench'."


def alexnet_features(in_channels: int) -> nn.Sequential:
    """torchvision's AlexNet ``features``: 224x224 -> 256x6x6."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def zfnet_features(in_channels: int) -> nn.Sequential:
    """ZFNet's ``features``: 224 -> 110 (7x7/2) -> 55 (pool) -> 26 (5x5/2) -> 13 (pool) -> 6."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=7, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.Conv2d(96, 256, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class AlexNet(ZooModel):
    """AlexNet-shaped network: conv ``features`` + adaptive pool + three fully connected layers.

    Args:
        features: the conv stack, ending with 256 channels (``alexnet_features``...).
        name: the registry name, used in error messages.
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        classifier_width: width of the two hidden fully connected layers (4096 in the paper).
        dropout: dropout probability before the hidden fully connected layers.

    Shape:
        (N, C, H, W) -> forward_features (N, 256, H', W') -> avgpool (N, 256, 6, 6)
        -> (N, 9216) -> (N, classifier_width) -> (N, num_classes).

    Raises:
        ValueError: an input too small for the conv stack (names the layer and the minimum).

    Example:
        >>> create("alexnet", num_classes=10, input_size=64)  # doctest: +SKIP
    """

    classifier_path = "classifier.6"

    def __init__(self, features: nn.Sequential, *, name: str, num_classes: int,
                 in_channels: int, input_size: tuple[int, int], classifier_width: int = 4096,
                 dropout: float = 0.5):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        self.classifier_width = check_positive_int(classifier_width, "classifier_width")
        dropout = check_probability(dropout, "dropout")
        self.features = features
        self.feature_size = check_input_size(
            name, input_size, spatial_layers(self.trunk.named_modules(prefix="features")),
            hint=_HINT)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, classifier_width),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(classifier_width, classifier_width),
            nn.ReLU(inplace=True),
            self._make_classifier(num_classes),
        )

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        return nn.Linear(self.classifier_width, num_classes)

    def feature_layers(self):
        """The ``features`` trunk, layer by layer: a stage before each max pool."""
        return [(f"features.{name}", layer) for name, layer in self.trunk.named_children()]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if reorders(self, x) and unhooked(self.trunk):
            return run_layers(list(self.trunk), x)  # each ReLU after its max pool
        return self.trunk(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, 256, 6, 6) -> (N, 9216)
        x = self.classifier[:-1](x)
        return x if pre_logits else self.classifier[-1](x)


@register("alexnet", description="AlexNet (Krizhevsky et al. 2012), torchvision's version; "
          "inputs >= 63x63", default_input_size=224)
def alexnet(*, num_classes, in_channels, input_size, **kwargs) -> AlexNet:
    """AlexNet: 61.1M parameters at 1000 classes, torchvision names."""
    return AlexNet(alexnet_features(in_channels), name="alexnet", num_classes=num_classes,
                   in_channels=in_channels, input_size=input_size, **kwargs)


@register("zfnet", description="ZFNet (Zeiler & Fergus 2013): AlexNet with 7x7/2 first "
          "filters; inputs >= 53x53", default_input_size=224)
def zfnet(*, num_classes, in_channels, input_size, **kwargs) -> AlexNet:
    """ZFNet: AlexNet's layout with ZFNet's filters."""
    return AlexNet(zfnet_features(in_channels), name="zfnet", num_classes=num_classes,
                   in_channels=in_channels, input_size=input_size, **kwargs)
