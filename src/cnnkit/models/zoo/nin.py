"""Network in Network (Lin et al. 2013): D2L's ImageNet layout and the paper's CIFAR-10 layout.

An mlpconv block is a KxK conv followed by two 1x1 convs (a small MLP slid over every pixel),
each with ReLU. There is no fully connected layer: the last block has one channel per class and
global average pooling turns each channel into a logit.

``layout="imagenet"`` ("Dive into Deep Learning", inputs of at least 67x67)::

    blocks: mlpconv 96 (11x11/4) -> maxpool 3x3/2 -> mlpconv 256 (5x5, pad 2) -> maxpool 3x3/2
            -> mlpconv 384 (3x3, pad 1) -> maxpool 3x3/2
    dropout 0.5 -> classifier: mlpconv num_classes (3x3, pad 1) -> global average pool -> logits

``layout="small"`` (the paper's CIFAR-10 network; a 32x32 image stays 32x32 through the first
block, 16x16 through the second and 8x8 through the classifier; inputs of at least 4x4)::

    blocks: mlpconv 192/160/96 (5x5, pad 2) -> maxpool 3x3/2 -> dropout 0.5
            -> mlpconv 192/192/192 (5x5, pad 2) -> avgpool 3x3/2
    dropout 0.5 -> classifier: mlpconv 192/192/num_classes (3x3, pad 1) -> global average pool

The pools round up (``ceil_mode=True``, as in the paper's Caffe model), so 32 -> 16 -> 8 and
28 -> 14 -> 7. ``layout=None`` picks "small" when both sides of ``input_size`` are <= 64 (the
rule ResNet uses for its stem). Both layouts use the same parameter names (``blocks.0.0.weight``,
``classifier.4.weight``, ...); only the shapes differ.

``features(x)`` (the embedding) is the global average of the volume that enters the classifier
block (384 channels, or 192 with the small layout).
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit._checks import check_probability
from cnnkit.models.base import ZooModel, check_input_size, choose_layout, spatial_layers
from cnnkit.models.registry import register



def mlpconv(in_channels: int, widths: int | tuple[int, int, int], kernel_size: int,
            stride: int = 1, padding: int = 0) -> nn.Sequential:
    """KxK conv -> ReLU -> 1x1 conv -> ReLU -> 1x1 conv -> ReLU.

    Args:
        in_channels: channels of the input volume.
        widths: output channels of the three convs, or one int for all three.
        kernel_size, stride, padding: of the first (KxK) conv.

    Shape:
        (N, in_channels, H, W) -> (N, widths[2], H', W'), H' = floor((H - K + 2P)/S) + 1.
    """
    first, second, third = (widths,) * 3 if isinstance(widths, int) else widths
    return nn.Sequential(
        nn.Conv2d(in_channels, first, kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(first, second, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(second, third, kernel_size=1),
        nn.ReLU(inplace=True),
    )


class NiN(ZooModel):
    """Network in Network; build it with ``create("nin", ...)``.

    Args:
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        layout: "imagenet" (D2L's 11x11/4 network, inputs >= 67x67) or "small" (the paper's
            CIFAR-10 network, inputs >= 4x4); None picks "small" when both sides of
            ``input_size`` are <= 64.
        dropout: dropout probability before the classifier block (and, in the small layout,
            after the first max pool too).

    Shape:
        (N, C, H, W) -> forward_features (N, F, H', W') -> classifier (N, num_classes, H', W')
        -> global average pool -> (N, num_classes); F = 384 and H' = H/32 (roughly) for
        "imagenet", F = 192 and H' = ceil(H/4) for "small".

    Raises:
        ValueError: unknown ``layout``, or an input too small for the layout (the message gives
            the smallest size that works and suggests ``layout='small'``).

    Example:
        >>> create("nin", num_classes=10, input_size=32).layout  # doctest: +SKIP
        'small'
    """

    classifier_path = "classifier"

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 layout: str | None = None, dropout: float = 0.5):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        dropout = check_probability(dropout, "dropout")
        layout = choose_layout(layout, input_size, "layout")
        self.layout = layout
        if layout == "imagenet":
            self.num_features = 384
            self.blocks = nn.Sequential(
                mlpconv(in_channels, 96, kernel_size=11, stride=4, padding=0),
                nn.MaxPool2d(3, stride=2),
                mlpconv(96, 256, kernel_size=5, stride=1, padding=2),
                nn.MaxPool2d(3, stride=2),
                mlpconv(256, 384, kernel_size=3, stride=1, padding=1),
                nn.MaxPool2d(3, stride=2),
            )
            hint = ("Or keep the size and pass layout='small' (the CIFAR-10 NiN: inputs from "
                    "4x4, the default up to 64x64).")
        else:
            self.num_features = 192
            self.blocks = nn.Sequential(
                mlpconv(in_channels, (192, 160, 96), kernel_size=5, stride=1, padding=2),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
                nn.Dropout(dropout),
                mlpconv(96, 192, kernel_size=5, stride=1, padding=2),
                nn.AvgPool2d(3, stride=2, ceil_mode=True),
            )
            hint = ""
        self.dropout = nn.Dropout(dropout)
        self.classifier = self._make_classifier(num_classes)
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_size = check_input_size(
            "nin", input_size, spatial_layers(self.named_modules()), hint=hint)

    def _make_classifier(self, num_classes: int) -> nn.Sequential:
        if self.layout == "imagenet":
            return mlpconv(384, num_classes, kernel_size=3, stride=1, padding=1)
        return mlpconv(192, (192, 192, num_classes), kernel_size=3, stride=1, padding=1)

    def feature_layers(self):
        """The mlpconv blocks and pools of ``blocks``."""
        return [(f"blocks.{name}", layer) for name, layer in self.blocks.named_children()]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(self.global_pool(x), 1)  # (N, F, 1, 1) -> (N, F)
        x = self.classifier(self.dropout(x))
        return torch.flatten(self.global_pool(x), 1)  # (N, K, 1, 1) -> (N, K)


@register("nin", description="Network in Network (Lin et al. 2013): mlpconv blocks of 1x1 "
          "convs, global average pooling instead of fc; layout='small' (auto for inputs <= 64) "
          "is the CIFAR-10 net, the imagenet layout needs inputs >= 67x67",
          default_input_size=224)
def nin(*, num_classes, in_channels, input_size, **kwargs) -> NiN:
    """NiN: D2L's ImageNet layout, or the paper's CIFAR-10 layout for small inputs."""
    return NiN(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **kwargs)
