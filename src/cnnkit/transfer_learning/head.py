"""Find the classifier (the "head") of a model and replace it with a fresh one.

The head is the last layer that maps the penultimate features to class scores:

* zoo models (``cnnkit.models.ZooModel``): ``model.classifier_path`` (``fc``, ``classifier.6``,
  NiN's 1x1-conv block ``classifier``), replaced through ``model.reset_classifier``;
* ``cnnkit.Sequential``: its last layer that has parameters (a ``Dense``/``fc`` layer, or a
  plain ``nn.Linear``);
* any other ``nn.Module``: its last ``nn.Linear`` (in registration order).

Example:
    >>> from cnnkit.models import create
    >>> model = create("resnet18", num_classes=1000, input_size=32)
    >>> head_path(model)
    'fc'
    >>> replace_head(model, 5).out_features
    5
"""
from __future__ import annotations

import logging

from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.layers.dense import Dense
from cnnkit.models.base import ZooModel
from cnnkit.models.sequential import Sequential

log = logging.getLogger(__name__)


def _has_own_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def head_path(model: nn.Module) -> str:
    """The dotted name of the model's classifier (``"fc"``, ``"classifier.6"``, ``"7"``).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: no classifier can be found (no parameters, or no ``nn.Linear``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, ZooModel):
        return model.classifier_path
    if isinstance(model, Sequential):
        with_params = [key for key, layer in model._modules.items()
                       if any(True for _ in layer.parameters())]
        if not with_params:
            raise ValueError("this Sequential has no layer with parameters, so it has no "
                             "classifier to replace; end it with a Dense/fc layer")
        return with_params[-1]
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"cannot find the classifier of {type(model).__name__}: it has no "
                         "nn.Linear layer; use a zoo model or a Sequential, or replace the "
                         "head yourself")
    return linears[-1]


def _fresh_linear(old: nn.Module, num_classes: int) -> nn.Module:
    """A freshly initialised layer like ``old`` (Dense or nn.Linear) with ``num_classes`` outputs."""
    if isinstance(old, Dense):
        if old.in_features is None:
            raise ValueError(f"{old.label} is not built yet; give the model its input shape "
                             "before replacing the classifier")
        return Dense(num_classes, activation=old.activation, bias=old.use_bias,
                     in_features=old.in_features, name=old.name)
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    raise ValueError(f"the classifier {type(old).__name__} is not a Dense or nn.Linear layer; "
                     "replace it yourself (model.<name> = nn.Linear(in_features, num_classes))")


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier for a freshly initialised one with ``num_classes`` outputs, in place.

    The new layer has the old one's input size, activation and bias setting, and lands on the
    old one's device and dtype; everything else (weights, frozen flags) is untouched. A zoo
    model's ``num_classes`` and a Sequential's output shape and spec follow the change.

    Args:
        model: a zoo model, a ``cnnkit.Sequential`` or any module ending in an ``nn.Linear``.
        num_classes: outputs of the new classifier.

    Shape:
        The head maps (N, F) -> (N, num_classes); F is unchanged.

    Returns:
        The new head module.

    Raises:
        TypeError / ValueError: ``num_classes`` is not a positive int, or no head is found.

    Example:
        >>> net = Sequential.from_spec("conv(4,3) relu flatten fc(10)", "8x8x1")
        >>> replace_head(net, 3).units, net.output_shape
        (3, (3,))
    """
    check_positive_int(num_classes, "num_classes")
    path = head_path(model)
    if isinstance(model, ZooModel):
        model.reset_classifier(num_classes)
        return model.get_classifier()
    old = model.get_submodule(path)
    reference = next(old.parameters())
    new = _fresh_linear(old, num_classes).to(device=reference.device, dtype=reference.dtype)
    parent_name, _, child_name = path.rpartition(".")
    model.get_submodule(parent_name).register_module(child_name, new)
    if isinstance(model, Sequential) and model.input_shape is not None:
        model._set_input_shape(model.input_shape)  # recompute every layer's output shape
    log.info("replaced the classifier %r by a new one with %d outputs", path, num_classes)
    return new
