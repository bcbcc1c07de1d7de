"""``FeatureInfo``: what a backbone reports about each stage, so heads can attach to any model.

A *stage* is the last layer at one resolution (the layer just before a downsampling one), plus
the last spatial layer. Every model (zoo or ``Sequential``) lists its stages in
``model.feature_info`` and returns their outputs from ``model.forward_stages(x)``, in forward
order, with strides strictly increasing (timm's ``feature_info``).

Example:
    >>> FeatureInfo("layer1", 64, 4)
    FeatureInfo(name='layer1', channels=64, stride=4)
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """One stage of a backbone.

    Args:
        name: the layer whose output the stage is (``"layer2"``, ``"features.9"``, ``"relu2"``).
        channels: C of its output (N, C, H, W).
        stride: how many input pixels one output pixel steps over, measured from the input
            (1 at full resolution, 2, 4, ...); its output is about (H / stride, W / stride).
    """

    name: str
    channels: int
    stride: int


def _first(value) -> int:
    return int(value[0] if isinstance(value, (tuple, list)) else value)


def module_stride(module: nn.Module, skip: tuple[str, ...] = ("downsample",)) -> int:
    """The nominal stride of ``module``: the product of the strides of its convs and pools.

    Shortcut branches whose names contain one of ``skip`` (ResNet's ``downsample``) repeat the
    main path's stride and are left out. A module without such layers (ReLU, BatchNorm) has 1.

    Example:
        >>> module_stride(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.MaxPool2d(2)))
        4
    """
    stride = 1
    for name, sub in module.named_modules():
        value = getattr(sub, "stride", None)
        if isinstance(value, (int, tuple, list)) and not any(s in name for s in skip):
            stride *= _first(value)
    return stride


def stage_indices(strides: list[int]) -> list[int]:
    """Indices of the stages in a chain of layers with these strides (see the module docstring).

    Layer i is a stage when layer i+1 downsamples (stride > 1), and the last layer always is.

    Example:
        >>> stage_indices([1, 1, 2, 1, 2])   # conv relu pool conv pool
        [1, 3, 4]
    """
    last = len(strides) - 1
    return [i for i in range(len(strides)) if i == last or strides[i + 1] > 1]
