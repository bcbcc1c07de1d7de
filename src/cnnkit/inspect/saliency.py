"""Why this class? Saliency maps (input gradients) and Grad-CAM heatmaps.

*Saliency* (Simonyan et al., 2013): how much the class score changes when one pixel changes,
``|d score / d pixel|``, the largest over the colour channels.
*Grad-CAM* (Selvaraju et al., 2017): weight each channel of a conv layer's output by the mean
gradient of the class score over that channel, sum, keep the positive part, and upsample to
the image: the regions of the image that pushed the score up.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.inspect.feature_maps import as_batch
from cnnkit.inspect.filters import conv_layers, find_conv_layer


def _class_score(logits: torch.Tensor, target: int | None) -> torch.Tensor:
    num_classes = logits.shape[1]
    if target is None:
        target = int(logits[0].argmax())
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index in [0, {num_classes}), got {target!r}")
    return logits[0, target]


def saliency(model: nn.Module, image, target: int | None = None) -> torch.Tensor:
    """Gradient of the class score with respect to each input pixel, as a heatmap.

    Args:
        model: a classifier returning logits (1, K); evaluated in eval mode.
        image: one normalised image (C, H, W).
        target: class index; default the predicted class.

    Shape:
        (C, H, W) -> (H, W): ``|d score / d x|`` maximised over the C channels.

    Raises:
        ValueError: ``target`` is not a valid class index.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> saliency(net, torch.rand(1, 2, 2), target=0).shape
        torch.Size([2, 2])
    """
    x = as_batch(image).detach().clone().requires_grad_(True)
    was_training = model.training
    try:
        model.eval()
        score = _class_score(model(x), target)
        (grad,) = torch.autograd.grad(score, x)
    finally:
        model.train(was_training)
    return grad[0].abs().amax(dim=0)  # (1, C, H, W) -> (H, W)


def grad_cam(model: nn.Module, image, target: int | None = None, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM heatmap of one class over the image, scaled to [0, 1].

    ``cam = ReLU(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij d score / d A_k[i, j]``, where A is
    the output of the chosen conv layer; then bilinear upsampling to the image size and division
    by the maximum (an all-zero map stays zero: nothing in the image favoured that class).

    Args:
        model: a classifier returning logits (1, K); evaluated in eval mode.
        image: one normalised image (C, H, W).
        target: class index; default the predicted class.
        layer: name of a conv layer (``named_modules()``); default the last conv layer.

    Shape:
        (C, H, W) -> (H, W), values in [0, 1].

    Raises:
        ValueError: no such conv layer, or an invalid ``target``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(2, 2))
        >>> grad_cam(net, torch.rand(1, 8, 8)).shape
        torch.Size([8, 8])
    """
    layers = conv_layers(model)
    if layer is None and layers:
        name, module = layers[-1]
    else:
        name, module = find_conv_layer(model, layer)
    # The input requires grad so the graph exists even when every weight is frozen.
    x = as_batch(image).detach().clone().requires_grad_(True)
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, output: captured.append(output))
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(x)
            score = _class_score(logits, target)
            if not captured or not captured[-1].requires_grad:
                raise ValueError(f"layer {name!r} did not take part in computing the output "
                                 "with gradients; pick a conv layer on the forward path")
            activation = captured[-1]
            (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
        model.train(was_training)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (1, K, h, w) -> (1, K, 1, 1)
    cam = F.relu((weights * activation.detach()).sum(dim=1, keepdim=True))  # -> (1, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    peak = cam.max()
    return cam / peak if peak > 0 else cam
