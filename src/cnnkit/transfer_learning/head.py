"""Find the classifier (the "head") of a model and replace it with a fresh one.

The head is the last layer that maps the penultimate features to class scores:

* every cnnkit model (zoo models and ``cnnkit.Sequential``, see ``cnnkit.models.features``):
  ``model.classifier_path`` (``fc``, ``classifier.6``, NiN's 1x1-conv block ``classifier``, a
  Sequential's last layer with parameters), replaced through ``model.reset_head``;
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

log = logging.getLogger(__name__)


def head_path(model: nn.Module) -> str:
    """The dotted name of the model's classifier (``"fc"``, ``"classifier.6"``, ``"7"``).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: no classifier can be found (no parameters, or no ``nn.Linear``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if hasattr(model, "reset_head"):
        return model.classifier_path
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"cannot find the classifier of {type(model).__name__}: it has no "
                         "nn.Linear layer; use a zoo model or a Sequential, or replace the "
                         "head yourself")
    return linears[-1]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier for a freshly initialised one with ``num_classes`` outputs, in place.

    The new layer has the old one's input size, activation and bias setting, and lands on the
    old one's device and dtype; everything else (weights, frozen flags) is untouched. A zoo
    model's ``num_classes`` (and a Sequential's output shape and spec) follow the change.

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
        >>> from cnnkit.models.sequential import Sequential
        >>> net = Sequential.from_spec("conv(4,3) relu flatten fc(10)", "8x8x1")
        >>> replace_head(net, 3).units, net.output_shape
        (3, (3,))
    """
    check_positive_int(num_classes, "num_classes")
    path = head_path(model)
    if hasattr(model, "reset_head"):
        model.reset_head(num_classes)
        log.info("replaced the classifier %r by a new one with %d outputs", path, num_classes)
        return model.get_classifier()
    old = model.get_submodule(path)
    reference = next(old.parameters())
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new = new.to(device=reference.device, dtype=reference.dtype)
    parent_name, _, child_name = path.rpartition(".")
    model.get_submodule(parent_name).register_module(child_name, new)
    log.info("replaced the classifier %r by a new one with %d outputs", path, num_classes)
    return new
