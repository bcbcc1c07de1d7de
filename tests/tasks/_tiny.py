"""A tiny backbone implementing the model interface (tasks contract §1) for head tests."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    channels: int
    stride: int


class TinyBackbone(nn.Module):
    """Three stages at strides 2, 4, 8 with 4, 8, 16 channels."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.stages = nn.ModuleList()
        channels = in_channels
        for out in (4, 8, 16):
            self.stages.append(nn.Sequential(nn.Conv2d(channels, out, 3, 2, 1), nn.ReLU()))
            channels = out
        self.feature_info = [FeatureInfo(f"stage{i}", c, 2 ** (i + 1))
                             for i, c in enumerate((4, 8, 16))]

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
