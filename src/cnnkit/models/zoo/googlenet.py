"""GoogLeNet / Inception v1 (Szegedy et al. 2014), with torchvision's parameter names.

An Inception module runs four branches side by side and concatenates their channels:
1x1 conv | 1x1 -> 3x3 | 1x1 -> 3x3 (the paper's 5x5; torchvision uses 3x3 and so do we, so its
weights load) | 3x3 max pool -> 1x1. Every conv is ``BasicConv2d`` (conv without bias, BN, ReLU).

``aux_logits=True`` adds the two auxiliary classifiers (``aux1`` after inception4a, ``aux2``
after inception4d); ``forward`` still returns the main logits, ``forward_with_aux`` returns all
three. torchvision's ImageNet weight file contains ``aux1``/``aux2``: load it with
``aux_logits=True`` (or drop those keys). Those weights were trained with torchvision's
``transform_input=True``, which expects inputs normalised with mean 0.5 and std 0.5 per channel:
normalise that way instead of with the ImageNet statistics when you use them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import check_probability
from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001) -> ReLU, with ``nn.Conv2d`` keyword arguments."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated along the channels.

    Args:
        in_channels: input channels.
        ch1x1: filters of the 1x1 branch.
        ch3x3red, ch3x3: 1x1 reduction then 3x3 filters.
        ch5x5red, ch5x5: 1x1 reduction then the "5x5" branch (3x3 kernels, as in torchvision).
        pool_proj: 1x1 filters after the 3x3/1 max pool.

    Shape:
        (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # 4 x (N, C_b, H, W) -> (N, sum C_b, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool -> 1x1 conv 128 -> fc 1024 -> dropout -> fc.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = torch.flatten(x, 1)  # (N, 128, 4, 4) -> (N, 2048)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(ZooModel):
    """Inception v1; build it with ``create("googlenet", ...)``.

    Args:
        name: the registry name, used in error messages.
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        aux_logits: build the two auxiliary classifiers (see ``forward_with_aux``).
        dropout: dropout before ``fc``.

    Shape:
        (N, C, H, W) -> forward_features (N, 1024, H/32, W/32) -> (N, 1024) -> (N, num_classes).

    Example:
        >>> create("googlenet", num_classes=10, input_size=32)  # doctest: +SKIP
    """

    classifier_path = "fc"

    def __init__(self, *, name: str, num_classes: int, in_channels: int,
                 input_size: tuple[int, int], aux_logits: bool = False, dropout: float = 0.2):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        if not isinstance(aux_logits, bool):
            raise TypeError(f"aux_logits must be True or False, got {aux_logits!r}")
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.aux_logits = aux_logits
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=check_probability(dropout, "dropout"))
        self.fc = self._make_classifier(num_classes)
        self.feature_size = check_input_size(
            name, input_size,
            spatial_layers(self.named_modules(), skip=("inception", "aux")))
        self._init_weights()

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        head = nn.Linear(1024, num_classes)
        nn.init.trunc_normal_(head.weight, mean=0.0, std=0.01, a=-2, b=2)
        nn.init.zeros_(head.bias)
        return head

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh ``fc`` with ``num_classes`` outputs, and fresh auxiliary classifiers if any."""
        super().reset_classifier(num_classes)
        if self.aux_logits:
            device, dtype = self.fc.weight.device, self.fc.weight.dtype
            self.aux1 = InceptionAux(512, num_classes).to(device=device, dtype=dtype)
            self.aux2 = InceptionAux(528, num_classes).to(device=device, dtype=dtype)

    def _init_weights(self) -> None:
        """torchvision's init: truncated N(0, 0.01) convs and linears, BN weight 1 and bias 0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _run(self, x: torch.Tensor, with_aux: bool):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x)), aux1, aux2

    def feature_layers(self):
        """The main path of ``_run`` without the auxiliary classifiers."""
        return [(name, getattr(self, name)) for name in (
            "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
            "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
            "maxpool4", "inception5a", "inception5b")]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, 1024, 1, 1) -> (N, 1024)
        return x if pre_logits else self.fc(self.dropout(x))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> (logits, aux2 logits, aux1 logits), torchvision's order.

        Train with ``loss = main + 0.3 * (aux1 + aux2)`` as in the paper.

        Raises:
            ValueError: the model was built without ``aux_logits=True``.
        """
        if not self.aux_logits:
            raise ValueError("forward_with_aux needs the auxiliary classifiers: create the "
                             "model with aux_logits=True")
        self._check_input(x)
        features, aux1, aux2 = self._run(x, with_aux=True)
        return self.forward_head(features), aux2, aux1


@register("googlenet", description="GoogLeNet / Inception v1 (Szegedy et al. 2014), "
          "torchvision's version; aux_logits=True adds the auxiliary classifiers",
          default_input_size=224)
def googlenet(*, num_classes, in_channels, input_size, **kwargs) -> GoogLeNet:
    """GoogLeNet: 6.6M parameters at 1000 classes without the auxiliary classifiers."""
    return GoogLeNet(name="googlenet", num_classes=num_classes, in_channels=in_channels,
                     input_size=input_size, **kwargs)
