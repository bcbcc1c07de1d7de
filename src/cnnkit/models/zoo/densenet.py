"""DenseNet-121 (Huang et al. 2016), with torchvision's parameter names and an optional small stem.

Each dense layer sees the concatenation of every earlier feature map in its block and adds
``growth_rate`` new channels (BN-ReLU-1x1 conv "bottleneck" to ``bn_size * growth_rate``, then
BN-ReLU-3x3 conv). Transitions halve the channels (1x1 conv) and the size (2x2 average pool)::

    features: conv0 7x7/2 -> norm0 -> relu0 -> pool0 3x3/2
              -> denseblock1 -> transition1 -> ... -> denseblock4 -> norm5
    relu -> global average pool -> classifier (Linear 1024 -> num_classes)

``stem="small"`` (as in the paper's CIFAR DenseNets, for inputs <= 64 pixels) makes ``conv0`` a
3x3/1 conv and drops ``pool0``, so a 32x32 image reaches the last dense block at 4x4 instead of
1x1. ``stem=None`` picks it when both sides of ``input_size`` are <= 64 (ResNet's rule). The
parameter names stay the same (only ``conv0.weight``'s shape changes), so torchvision weights
load into the default "imagenet" stem.

Inputs need at least 29x29 pixels with the imagenet stem and 8x8 with the small stem (the third
transition's pool needs a 2x2 map).

torchvision's DenseNet weight files still use the old key names ``denselayer1.norm.1.weight``;
``remap_legacy_keys`` turns them into the current ``denselayer1.norm1.weight`` (as torchvision
does when it loads them).
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_probability
from cnnkit.models.base import ZooModel, check_input_size, choose_layout, spatial_layers
from cnnkit.models.registry import register


# "<prefix>.denselayerK.norm" + "." + "1.weight" -> joined without the dot (torchvision's regex)
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                         r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def remap_legacy_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old DenseNet keys (``denselayer1.norm.1.weight``) to ``denselayer1.norm1.weight``.

    Other keys pass through unchanged, so it is safe on an already current state dict.

    Example:
        >>> sorted(remap_legacy_keys({"features.denseblock1.denselayer1.conv.2.weight": 0}))
        ['features.denseblock1.denselayer1.conv2.weight']
    """
    remapped = {}
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        remapped[match.group(1) + match.group(2) if match else key] = value
    return remapped


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 on the concatenated inputs; returns the new features.

    Shape:
        list of (N, C_i, H, W) with sum C_i = in_features -> (N, growth_rate, H, W).
    """

    def __init__(self, in_features: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(inputs, 1)  # [(N, C_i, H, W)] -> (N, sum C_i, H, W)
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        return F.dropout(x, p=self.drop_rate, training=self.training)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers named ``denselayer1``...; output = all features concatenated.

    Shape:
        (N, C, H, W) -> (N, C + num_layers * growth_rate, H, W).
    """

    def __init__(self, num_layers: int, in_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float):
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_features + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)  # [(N, C_i, H, W)] -> (N, sum C_i, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 (channels -> out_features) then 2x2 average pool (size halves).

    Shape:
        (N, C, H, W) -> (N, out_features, floor(H/2), floor(W/2)).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_features, out_features, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(ZooModel):
    """A densely connected network; build it with ``create("densenet121", ...)``.

    Args:
        name: the registry name, used in error messages.
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        growth_rate: channels each dense layer adds (k in the paper).
        block_config: dense layers per block.
        num_init_features: filters of the first conv.
        bn_size: bottleneck width as a multiple of ``growth_rate``.
        drop_rate: dropout after each dense layer.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "small" (3x3/1 conv, no pool);
            None picks "small" when both sides of ``input_size`` are <= 64.

    Shape:
        (N, C, H, W) -> forward_features (N, 1024, H/32, W/32) with the imagenet stem (H/8 with
        the small stem) -> (N, 1024) -> (N, num_classes).

    Raises:
        ValueError: unknown ``stem``, or an input smaller than 29x29 (imagenet stem) or 8x8
            (small stem).

    Example:
        >>> create("densenet121", num_classes=10, input_size=32).stem  # doctest: +SKIP
        'small'
    """

    classifier_path = "classifier"

    def __init__(self, *, name: str, num_classes: int, in_channels: int,
                 input_size: tuple[int, int], growth_rate: int = 32,
                 block_config: tuple[int, ...] = (6, 12, 24, 16), num_init_features: int = 64,
                 bn_size: int = 4, drop_rate: float = 0.0, stem: str | None = None):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        drop_rate = check_probability(drop_rate, "drop_rate")
        stem = choose_layout(stem, input_size, "stem")
        self.stem = stem
        self.features = nn.Sequential()
        if stem == "imagenet":
            conv0 = nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False)
        else:
            conv0 = nn.Conv2d(in_channels, num_init_features, 3, stride=1, padding=1, bias=False)
        self.trunk.add_module("conv0", conv0)
        self.trunk.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.trunk.add_module("relu0", nn.ReLU(inplace=True))
        if stem == "imagenet":
            self.trunk.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            self.trunk.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.trunk.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.trunk.add_module("norm5", nn.BatchNorm2d(channels))
        self.num_features = channels
        self.classifier = self._make_classifier(num_classes)
        self.feature_size = check_input_size(
            name, input_size, spatial_layers(self.trunk.named_modules(prefix="features")),
            hint=("Or keep the size and pass stem='small' (inputs from 8x8, the default up to "
                  "64x64)." if stem == "imagenet" else ""))
        self._init_weights()

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        head = nn.Linear(self.num_features, num_classes)
        nn.init.zeros_(head.bias)
        return head

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal convs, BN weight 1 and bias 0, zero linear bias."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def feature_layers(self):
        """The ``features`` trunk (stem, dense blocks, transitions, norm5), then the final ReLU."""
        return [*((f"features.{name}", layer) for name, layer in self.trunk.named_children()),
                ("relu", F.relu)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.trunk(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)  # (N, C, 1, 1) -> (N, C)
        return x if pre_logits else self.classifier(x)


@register("densenet121", description="DenseNet-121 (Huang et al. 2016), growth 32, blocks "
          "[6, 12, 24, 16]; stem='small' (auto for inputs <= 64) for 32x32 images; inputs >= "
          "29x29 with the imagenet stem", default_input_size=224)
def densenet121(*, num_classes, in_channels, input_size, **kwargs) -> DenseNet:
    """DenseNet-121: 8.0M parameters at 1000 classes, torchvision names."""
    return DenseNet(name="densenet121", num_classes=num_classes, in_channels=in_channels,
                    input_size=input_size, **kwargs)
