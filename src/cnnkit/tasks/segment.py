"""Semantic segmentation on any backbone: FCN (Long et al., FCN-8s style skips) and U-Net.

Both return per-pixel class logits ``(N, K, H, W)`` at the input size; a backbone whose
strides do not divide the input is handled by bilinear interpolation to the input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from cnnkit.tasks.losses import dice_loss

IGNORE_INDEX = 255


def _check_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


class _SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy (ignore 255, optional class weights) + optional Dice."""

    def _setup_loss(self, class_weights, dice_weight: float) -> None:
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight!r}")
        self.dice_weight = float(dice_weight)
        weights = None if class_weights is None else torch.as_tensor(class_weights,
                                                                     dtype=torch.float32)
        if weights is not None and weights.shape != (self.num_classes,):
            raise ValueError(f"class_weights must have {self.num_classes} values, got "
                             f"{class_weights!r}")
        self.register_buffer("class_weights", weights)

    def loss(self, output: Tensor, targets) -> dict[str, Tensor]:
        """Cross-entropy (+ dice_weight·Dice).

        Args:
            output: logits (N, K, H, W).
            targets: masks (N, H, W) int64 (255 = ignore), or a dict with ``"masks"``.
        """
        masks = targets["masks"] if isinstance(targets, dict) else targets
        ce = F.cross_entropy(output, masks, weight=self.class_weights, ignore_index=IGNORE_INDEX)
        parts = {"ce": ce.detach()}
        total = ce
        if self.dice_weight:
            dice = dice_loss(output, masks, ignore_index=IGNORE_INDEX)
            parts["dice"] = dice.detach()
            total = total + self.dice_weight * dice
        return {"loss": total, **parts}

    def _record(self, head: str, kwargs: dict) -> dict:
        weights = None if self.class_weights is None else self.class_weights.tolist()
        return {"type": "task", "task": "segment", "head": head,
                "backbone": self.backbone.architecture, "num_classes": self.num_classes,
                "kwargs": {**kwargs, "class_weights": weights, "dice_weight": self.dice_weight}}


class FCN(_SegmentationLoss):
    """FCN: 1×1 classifiers on the last and ``skips`` earlier stages, summed coarse to fine.

    Args:
        backbone: a model of the tasks contract §1.
        num_classes: K.
        skips: how many earlier stages add their 1×1 scores (None, the default: every earlier
            stage, down to the finest, so thin shapes keep their edges; 2 = FCN-8s on a
            stride-32 net).
        class_weights: K per-class cross-entropy weights, or None.
        dice_weight: weight of the Dice loss (0 = none).

    Shape:
        (N, C, H, W) -> (N, K, H, W). Score maps are upsampled bilinearly to the next finer
        stage's size, added, and the finest sum is upsampled to (H, W).

    Example:
        >>> FCN(backbone, 11)(torch.zeros(1, 1, 64, 64)).shape  # doctest: +SKIP
        torch.Size([1, 11, 64, 64])
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, skips: int | None = None,
                 class_weights=None, dice_weight: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.num_classes = _check_classes(num_classes)
        info = backbone.feature_info
        skips = len(info) - 1 if skips is None else skips
        if isinstance(skips, bool) or not isinstance(skips, int) or not 0 <= skips < len(info):
            raise ValueError(f"skips must be an int in [0, {len(info) - 1}] for this backbone's "
                             f"{len(info)} stages, got {skips!r}")
        self.skips = skips
        self.scores = nn.ModuleList(nn.Conv2d(i.channels, num_classes, 1)
                                    for i in info[len(info) - 1 - skips:])
        self._setup_loss(class_weights, dice_weight)

    @property
    def architecture(self) -> dict:
        return self._record("fcn", {"skips": self.skips})

    def forward(self, x: Tensor) -> Tensor:
        # the last skips + 1 stages (not feature_info: a zoo backbone measures it by a forward pass)
        stages = self.backbone.forward_stages(x)[-(self.skips + 1):]
        out = self.scores[-1](stages[-1])
        for stage, score in zip(reversed(stages[:-1]), reversed(self.scores[:-1])):
            skip = score(stage)
            out = skip + F.interpolate(out, size=skip.shape[-2:], mode="bilinear",
                                       align_corners=False)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


class _UpBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = nn.Sequential(
            nn.Conv2d(out_channels + skip_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))  # (N, C+S, h, w) -> (N, C', h, w)


class UNet(_SegmentationLoss):
    """U-Net: backbone stages as the encoder, transposed-conv decoder with skip concatenation.

    Args:
        backbone: a model of the tasks contract §1.
        num_classes: K.
        decoder_channels: channels of each decoder block, coarse to fine (default: each
            skip stage's channel count).
        class_weights: K per-class cross-entropy weights, or None.
        dice_weight: weight of the Dice loss (0 = none).

    Shape:
        (N, C, H, W) -> (N, K, H, W); each block: ConvTranspose(k=2, s=2) -> concat with the
        finer stage -> 3×3 conv-BN-ReLU; the last map is upsampled to (H, W) when the finest
        stage is not at stride 1.

    Example:
        >>> UNet(backbone, 11)(torch.zeros(1, 1, 64, 64)).shape  # doctest: +SKIP
        torch.Size([1, 11, 64, 64])
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, decoder_channels=None,
                 class_weights=None, dice_weight: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.num_classes = _check_classes(num_classes)
        info = backbone.feature_info
        skips = [i.channels for i in info[:-1]][::-1]
        if decoder_channels is None:
            decoder_channels = skips
        decoder_channels = [int(c) for c in decoder_channels]
        if len(decoder_channels) != len(skips):
            raise ValueError(f"decoder_channels needs {len(skips)} values (one per skip stage), "
                             f"got {decoder_channels!r}")
        self.decoder_channels = decoder_channels
        blocks, channels = [], info[-1].channels
        for skip, out in zip(skips, decoder_channels):
            blocks.append(_UpBlock(channels, skip, out))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self._setup_loss(class_weights, dice_weight)

    @property
    def architecture(self) -> dict:
        return self._record("unet", {"decoder_channels": self.decoder_channels})

    def forward(self, x: Tensor) -> Tensor:
        stages = self.backbone.forward_stages(x)
        out = stages[-1]
        for block, skip in zip(self.blocks, reversed(stages[:-1])):
            out = block(out, skip)
        out = self.classifier(out)
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out
