"""Feature (activation) maps: what each layer of a CNN outputs for one image.

For an ``nn.Sequential`` the output of every child is recorded in order, so "after conv, after
ReLU, after pooling" is literal. For any other model, forward hooks record the output of every
conv, activation and pooling module. Only spatial outputs (N, C, H, W) are kept: after
``Flatten`` there are no maps left to draw (``class_probabilities`` covers the end of the network).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cnnkit.inspect.filters import is_conv_layer

_ACTIVATION_NAMES = {"relu", "leakyrelu", "relu6", "elu", "selu", "gelu", "silu", "sigmoid",
                     "tanh", "softplus", "mish", "hardswish", "hardtanh", "prelu", "activation"}


class FeatureMap(NamedTuple):
    """One layer's output for one image: its name, its kind and the (C, H, W) tensor."""

    name: str
    kind: str
    maps: torch.Tensor


class ClassProbabilities(NamedTuple):
    """Softmax output for one image: class names and their probabilities (K,), summing to 1."""

    class_names: list[str]
    probs: torch.Tensor


def layer_kind(module: nn.Module) -> str:
    """``"conv"``, ``"activation"``, ``"pool"``, ``"norm"`` or ``"other"``, from the module's type.

    Example:
        >>> layer_kind(nn.MaxPool2d(2))
        'pool'
    """
    if is_conv_layer(module):
        return "conv"
    type_name = type(module).__name__.lower()
    if type(module).__module__ == "torch.nn.modules.activation" or type_name in _ACTIVATION_NAMES:
        return "activation"
    if "pool" in type_name:
        return "pool"
    if "norm" in type_name:
        return "norm"
    return "other"


def as_batch(image) -> torch.Tensor:
    """One image (C, H, W) (or a batch of one, (1, C, H, W)) -> float (1, C, H, W).

    Raises:
        ValueError: not 3-D or a batch of more than one image.
    """
    x = torch.as_tensor(image)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(
            f"image must be one (C, H, W) tensor, already normalised like the training data, "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"image must be a float tensor (normalised), got dtype {x.dtype}; "
                        "convert uint8 images with the model's normalization first")
    return x.unsqueeze(0)  # (C, H, W) -> (1, C, H, W)


def watched_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs whose outputs feature maps show: every layer of a
    Sequential, else every conv, activation and pooling module (the server uses the same list)."""
    if isinstance(model, nn.Sequential):
        return list(model.named_children())
    return [(name, module) for name, module in model.named_modules()
            if name and layer_kind(module) in ("conv", "activation", "pool")]


def feature_maps(model: nn.Module, image, layers: list[str] | None = None) -> list[FeatureMap]:
    """Record the output of every conv/activation/pool layer (every child of a Sequential).

    Args:
        model: any ``nn.Module``; put in eval mode for the pass, then restored.
        image: one normalised image (C, H, W).
        layers: names (from ``named_modules()``) to record instead of the default set.

    Shape:
        image (C, H, W) -> for each recorded layer, its output without the batch (C', H', W').

    Raises:
        ValueError: an unknown layer name (the message lists the names).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        >>> [(m.name, m.kind, tuple(m.maps.shape)) for m in feature_maps(net, torch.rand(1, 8, 8))]
        [('0', 'conv', (4, 6, 6)), ('1', 'activation', (4, 6, 6)), ('2', 'pool', (4, 3, 3))]
    """
    if layers is None:
        watched = watched_modules(model)
    else:
        modules = dict(model.named_modules())
        unknown = [name for name in layers if name not in modules]
        if unknown:
            raise ValueError(f"layers {unknown!r} are not in the model; known names: "
                             f"{[name for name in modules if name]}")
        watched = [(name, modules[name]) for name in layers]

    recorded: list[FeatureMap] = []

    def make_hook(name: str, module: nn.Module):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                recorded.append(FeatureMap(name, layer_kind(module), output[0].detach().cpu()))
        return hook

    handles = [module.register_forward_hook(make_hook(name, module)) for name, module in watched]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(as_batch(image))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return recorded


def class_probabilities(model: nn.Module, image, class_names: list[str] | None = None) -> ClassProbabilities:
    """Softmax of the model's output for one image.

    Args:
        model: a classifier returning logits (1, K).
        image: one normalised image (C, H, W).
        class_names: K names; default ``"0" .. "K-1"``.

    Shape:
        image (C, H, W) -> probs (K,).

    Raises:
        ValueError: ``class_names`` does not have K entries.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> round(class_probabilities(net, torch.rand(1, 2, 2)).probs.sum().item(), 4)
        1.0
    """
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            logits = model(as_batch(image))
    finally:
        model.train(was_training)
    probs = torch.softmax(logits.reshape(-1).float(), dim=0)  # (1, K) -> (K,)
    names = [str(k) for k in range(probs.numel())] if class_names is None else list(class_names)
    if len(names) != probs.numel():
        raise ValueError(f"class_names has {len(names)} names but the model outputs "
                         f"{probs.numel()} classes: {class_names!r}")
    return ClassProbabilities(names, probs)
