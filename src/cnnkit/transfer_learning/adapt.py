"""Input adaptation: reuse a network pretrained on 3-channel images for 1-channel ones (and back).

Only the first convolution sees the channels, so only its weights change. The rule, for a
first-layer weight ``W`` of shape (F, C, kH, kW) adapted to C' input channels:

* RGB -> gray (C' = 1): ``W' = W.sum(dim=1)``. A gray image g replicated to RGB (g, g, g) gives
  ``sum_c W_c * g = (sum_c W_c) * g``, so the adapted layer on g responds exactly as the
  original layer on the replicated image.
* gray -> RGB (C = 1, C' = 3): ``W'_c = W / 3`` for every c. On an RGB image this is the
  original filter applied to the channel mean, i.e. to the image converted to gray by averaging.
* in general, fewer channels (C' < C) fold: ``W'_j = sum of W_c over c ≡ j (mod C')``; more
  channels (C' > C) spread: ``W'_j = W_{j mod C} / n``, n = how many new channels copy that
  old one. Both keep the response to a constant image exactly the same, and reduce to the two
  rules above for C' = 1 and C = 1.

Input *size* needs no weights changed for models ending in global pooling (ResNet, DenseNet,
GoogLeNet, NiN, airbench) or adaptive pooling (AlexNet, VGG): give any size they accept. Models
whose classifier depends on the size (LeNet-5, flatten + fc Sequential models) need images of
the size they were trained on; resize the data (``--input-size``) instead.

Example:
    >>> from cnnkit.models import create
    >>> model = create("resnet18", num_classes=10, in_channels=3, input_size=32)
    >>> adapt_input_channels(model, 1).weight.shape
    torch.Size([64, 1, 3, 3])
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.layers.conv import Conv

log = logging.getLogger(__name__)


def adapt_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-layer conv weight to ``in_channels`` inputs by the module's rule.

    Args:
        weight: (F, C, kH, kW).
        in_channels: C', the new number of input channels.

    Shape:
        (F, C, kH, kW) -> (F, C', kH, kW).

    Example:
        >>> adapt_conv_weight(torch.ones(2, 3, 1, 1), 1).flatten().tolist()
        [3.0, 3.0]
    """
    check_positive_int(in_channels, "in_channels")
    channels = weight.shape[1]
    if in_channels == channels:
        return weight.clone()
    if in_channels < channels:
        target = torch.arange(channels, device=weight.device) % in_channels
        folded = weight.new_zeros(weight.shape[0], in_channels, *weight.shape[2:])
        return folded.index_add_(1, target, weight)  # (F, C, kH, kW) -> (F, C', kH, kW)
    source = torch.arange(in_channels, device=weight.device) % channels
    copies = torch.bincount(source, minlength=channels).to(weight.dtype)
    # (F, C, kH, kW) -> (F, C', kH, kW), each copy scaled by 1/n
    return weight[:, source] / copies[source].view(1, -1, 1, 1)


def first_conv(model: nn.Module) -> tuple[str, nn.Module]:
    """The (name, module) of the first convolution in registration order.

    Raises:
        ValueError: the model has no ``nn.Conv2d`` or cnnkit ``Conv``.
    """
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, Conv)):
            return name, module
    raise ValueError(f"{type(model).__name__} has no convolution whose input channels could be "
                     "adapted")


def adapt_input_channels(model: nn.Module, in_channels: int) -> nn.Module:
    """Make ``model`` take ``in_channels``-channel images, adapting its first conv in place.

    A zoo model's ``in_channels`` (and so its ``architecture``) and a Sequential's input
    shape follow the change, so the run folder rebuilds the adapted model.

    Args:
        model: a zoo model, a ``cnnkit.Sequential`` or any module whose first conv is the input.
        in_channels: the channels of the new images (1 for gray, 3 for RGB).

    Returns:
        The adapted first convolution.

    Raises:
        ValueError: the first conv is grouped (depthwise), or not built yet.

    Example:
        >>> adapt_input_channels(model, 1)   # doctest: +SKIP
    """
    check_positive_int(in_channels, "in_channels")
    name, conv = first_conv(model)
    if conv.groups != 1:
        raise ValueError(f"the first conv {name!r} has groups={conv.groups}; only ordinary "
                         "convolutions (groups=1) can be adapted to other input channels")
    if conv.weight is None:
        raise ValueError(f"the first conv {name!r} is not built yet; give the model its input "
                         "shape first")
    old_channels = conv.weight.shape[1]
    with torch.no_grad():
        new_weight = adapt_conv_weight(conv.weight, in_channels)
    conv.weight = nn.Parameter(new_weight, requires_grad=conv.weight.requires_grad)
    conv.in_channels = in_channels
    if isinstance(conv, Conv) and conv.input_shape is not None:
        conv.input_shape = (in_channels, *conv.input_shape[1:])
    if getattr(model, "input_shape", None) is not None:  # a cnnkit model: keep its record true
        model.in_channels = in_channels
    log.info("adapted %r from %d to %d input channels", name, old_channels, in_channels)
    return conv
