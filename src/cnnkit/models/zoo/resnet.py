"""ResNet-18/34/50 (He et al. 2015), with torchvision's parameter names and an optional small stem.

Structure (torchvision's, "ResNet v1.5": the stride sits on the 3x3 conv of a bottleneck)::

    conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2 -> layer1..layer4 -> avgpool -> fc

``stem="small"`` (CIFAR-style, for inputs <= 64 pixels) replaces ``conv1`` by a 3x3/1 conv and
drops the max pool, so a 32x32 image reaches layer4 at 4x4 instead of 1x1. The parameter names
stay the same (only ``conv1.weight``'s shape changes), so torchvision weights load into the
default "imagenet" stem.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit.models.base import ZooModel, check_input_size, choose_layout, spatial_layers
from cnnkit.models.registry import register



class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    Shape:
        (N, C_in, H, W) -> (N, planes, H', W') with H' = floor((H - 1)/stride) + 1.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride) -> 1x1 (expand x4) convs with a shortcut.

    Shape:
        (N, C_in, H, W) -> (N, 4*planes, H', W') with H' = floor((H - 1)/stride) + 1.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(ZooModel):
    """A residual network; build it with ``create("resnet18" | "resnet34" | "resnet50", ...)``.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: number of blocks in layer1..layer4, e.g. (2, 2, 2, 2) for ResNet-18.
        name: the registry name, used in error messages.
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "small" (3x3/1 conv, no pool);
            None picks "small" when both sides of ``input_size`` are <= 64.
        zero_init_residual: start each block's last BN at 0, so each block starts as identity.

    Shape:
        (N, in_channels, H, W) -> forward_features (N, 512*expansion, H/32, W/32) with the
        imagenet stem (H/8 with the small stem) -> (N, num_classes).

    Raises:
        ValueError: unknown ``stem``.

    Example:
        >>> create("resnet18", num_classes=10, input_size=32).conv1.kernel_size  # doctest: +SKIP
        (3, 3)
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int], *,
                 name: str, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 stem: str | None = None, zero_init_residual: bool = False):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        stem = choose_layout(stem, input_size, "stem")
        self.stem = stem
        self.block = block
        self.inplanes = 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = self._make_classifier(num_classes)
        self.feature_size = check_input_size(
            name, input_size, spatial_layers(self.named_modules(), skip=("downsample",)))
        self._init_weights(zero_init_residual)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * self.block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * self.block.expansion, 1, stride=stride,
                          bias=False),
                nn.BatchNorm2d(planes * self.block.expansion),
            )
        layers = [self.block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * self.block.expansion
        layers += [self.block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        return nn.Linear(512 * self.block.expansion, num_classes)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """torchvision's init: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def feature_layers(self):
        """Stem then layer1..layer4; each of layer2..layer4 halves the size."""
        return [(name, getattr(self, name)) for name in
                ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, C, 1, 1) -> (N, C)
        return x if pre_logits else self.fc(x)


@register("resnet18", description="ResNet-18 (He et al. 2015), basic blocks [2, 2, 2, 2]; "
          "stem='small' (auto for inputs <= 64) for 32x32 images", default_input_size=224)
def resnet18(*, num_classes, in_channels, input_size, **kwargs) -> ResNet:
    """ResNet-18: 11.7M parameters at 1000 classes, torchvision names."""
    return ResNet(BasicBlock, (2, 2, 2, 2), name="resnet18", num_classes=num_classes,
                  in_channels=in_channels, input_size=input_size, **kwargs)


@register("resnet34", description="ResNet-34 (He et al. 2015), basic blocks [3, 4, 6, 3]; "
          "stem='small' (auto for inputs <= 64) for 32x32 images", default_input_size=224)
def resnet34(*, num_classes, in_channels, input_size, **kwargs) -> ResNet:
    """ResNet-34: 21.8M parameters at 1000 classes, torchvision names."""
    return ResNet(BasicBlock, (3, 4, 6, 3), name="resnet34", num_classes=num_classes,
                  in_channels=in_channels, input_size=input_size, **kwargs)


@register("resnet50", description="ResNet-50 (He et al. 2015), bottleneck blocks [3, 4, 6, 3]; "
          "stem='small' (auto for inputs <= 64) for 32x32 images", default_input_size=224)
def resnet50(*, num_classes, in_channels, input_size, **kwargs) -> ResNet:
    """ResNet-50: 25.6M parameters at 1000 classes, torchvision names."""
    return ResNet(Bottleneck, (3, 4, 6, 3), name="resnet50", num_classes=num_classes,
                  in_channels=in_channels, input_size=input_size, **kwargs)
