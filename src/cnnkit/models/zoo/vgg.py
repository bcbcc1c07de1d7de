"""VGG-11 and VGG-16 (Simonyan & Zisserman 2014), with torchvision's parameter names.

Structure: ``features`` (3x3 convs, padding 1, ReLU; 2x2 max pools) -> ``avgpool``
(AdaptiveAvgPool2d((7, 7)), so any input of at least 32x32 works) -> ``classifier``
(Linear 25088->4096, ReLU, Dropout, Linear 4096->4096, ReLU, Dropout, Linear -> num_classes).
``batch_norm=True`` gives torchvision's ``vgg11_bn``/``vgg16_bn`` layout (conv, BN, ReLU).
``classifier_width`` narrows the two hidden fully connected layers (4096 in the paper) for small
data sets; torchvision weights need the default.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit._checks import check_positive_int, check_probability
from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register
from cnnkit.models.relu_pool import reorders, run_layers, unhooked

# Output channels of each 3x3 conv; "M" is a 2x2 max pool (torchvision's configurations A and D).
_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}
_HINT = ("For smaller images use 'resnet18' (its small stem takes 32x32 and less) or 'airbench'.")


def make_vgg_layers(config, in_channels: int, batch_norm: bool) -> nn.Sequential:
    """The ``features`` stack of a VGG from a configuration like ``(64, "M", 128, ...)``."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


class VGG(ZooModel):
    """A VGG network; build it with ``create("vgg11" | "vgg16", ...)``.

    Args:
        config: "vgg11" or "vgg16" (the layer configuration).
        name: the registry name, used in error messages.
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        batch_norm: insert BatchNorm2d after every conv (torchvision's ``*_bn`` variants).
        classifier_width: width of the two hidden fully connected layers.
        dropout: dropout probability in the classifier.

    Shape:
        (N, C, H, W) -> forward_features (N, 512, H/32, W/32) -> avgpool (N, 512, 7, 7)
        -> (N, 25088) -> (N, classifier_width) -> (N, num_classes).

    Raises:
        ValueError: input smaller than 32x32 (the five 2x2 pools shrink it to nothing).

    Example:
        >>> create("vgg11", num_classes=10, input_size=32)  # doctest: +SKIP
    """

    classifier_path = "classifier.6"

    def __init__(self, config: str, *, name: str, num_classes: int, in_channels: int,
                 input_size: tuple[int, int], batch_norm: bool = False,
                 classifier_width: int = 4096, dropout: float = 0.5):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        self.classifier_width = check_positive_int(classifier_width, "classifier_width")
        dropout = check_probability(dropout, "dropout")
        self.features = make_vgg_layers(_CONFIGS[config], in_channels, batch_norm)
        self.feature_size = check_input_size(
            name, input_size, spatial_layers(self.trunk.named_modules(prefix="features")),
            hint=_HINT)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, classifier_width),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(classifier_width, classifier_width),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            self._make_classifier(num_classes),
        )
        self._init_weights()

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        head = nn.Linear(self.classifier_width, num_classes)
        nn.init.normal_(head.weight, 0, 0.01)
        nn.init.zeros_(head.bias)
        return head

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal (fan_out) convs, N(0, 0.01) linears, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def feature_layers(self):
        """The ``features`` trunk, layer by layer: a stage before each max pool."""
        return [(f"features.{name}", layer) for name, layer in self.trunk.named_children()]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if reorders(self, x) and unhooked(self.trunk):
            return run_layers(list(self.trunk), x)  # each ReLU after its max pool
        return self.trunk(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, 512, 7, 7) -> (N, 25088)
        x = self.classifier[:-1](x)
        return x if pre_logits else self.classifier[-1](x)


def _register(config: str, batch_norm: bool):
    name = f"{config}_bn" if batch_norm else config

    def build(*, num_classes, in_channels, input_size, **kwargs) -> VGG:
        return VGG(config, name=name, num_classes=num_classes, in_channels=in_channels,
                   input_size=input_size, batch_norm=batch_norm, **kwargs)

    build.__doc__ = f"{name}: VGG with torchvision's parameter names."
    register(name, description=f"VGG-{config[3:]} (Simonyan & Zisserman 2014), 3x3 convs"
             f"{', batch norm after every conv' if batch_norm else ''}; inputs >= 32x32",
             default_input_size=224)(build)


_register("vgg11", batch_norm=False)
_register("vgg16", batch_norm=False)
_register("vgg11", batch_norm=True)
_register("vgg16", batch_norm=True)
