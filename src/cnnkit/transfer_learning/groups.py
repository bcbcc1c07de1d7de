"""Layer groups: a model cut into consecutive blocks, from the input to the classifier.

Freezing "up to a layer", gradual unfreezing and discriminative learning rates all work on
layer groups. The rule, for any ``nn.Module``:

1. every top-level child is a group (``conv1``, ``layer1``, ... for ResNet; ``0``, ``1``, ...
   for a Sequential), except that the torchvision ``features`` trunk (AlexNet, VGG, DenseNet)
   and NiN's ``blocks`` are split into their own children (``features.0``, ``features.3``...);
2. the classifier (see :func:`cnnkit.transfer_learning.head.head_path`) is always the last
   group, called ``"head"``, even when it sits inside a larger child (VGG's ``classifier.6``);
3. children without parameters (ReLU, pooling) are dropped, and a group that holds only
   normalisation layers (BatchNorm) joins the group before it, so ``conv1`` + ``bn1`` is one.

Example:
    >>> from cnnkit.models import create
    >>> [g.name for g in layer_groups(create("resnet18", input_size=32))]
    ['conv1', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnkit.layers.norm import BatchNorm
from cnnkit.transfer_learning.head import head_path

# Containers whose children are the natural groups (torchvision's trunk, NiN's blocks).
SPLIT_CONTAINERS = ("features", "blocks")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class LayerGroup:
    """One group: its name and the dotted names of the modules it spans.

    Attributes:
        name: the first module's name (``"layer2"``, ``"features.3"``), or ``"head"``.
        modules: the module names in the group (``("conv1", "bn1")``).
    """

    name: str
    modules: tuple[str, ...]

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The group's parameters in ``model`` (no duplicates, in module order)."""
        seen: set[int] = set()
        params = []
        for name in self.modules:
            for p in model.get_submodule(name).parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params


def _is_norm_only(module: nn.Module) -> bool:
    with_params = [m for m in module.modules() if any(True for _ in m.parameters(recurse=False))]
    return bool(with_params) and all(isinstance(m, _NORM_TYPES) for m in with_params)


def _candidates(model: nn.Module, head: str) -> list[tuple[str, nn.Module]]:
    """(name, module) units in order, with the head's parent split so the head stands alone."""
    units: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        split = name in SPLIT_CONTAINERS and isinstance(child, nn.Sequential)
        if split or head.startswith(name + "."):
            units.extend(_split(name, child, head))
        else:
            units.append((name, child))
    return units


def _split(prefix: str, module: nn.Module, head: str) -> list[tuple[str, nn.Module]]:
    units = []
    for name, child in module.named_children():
        full = f"{prefix}.{name}"
        if head.startswith(full + "."):
            units.extend(_split(full, child, head))
        else:
            units.append((full, child))
    return units


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """Cut ``model`` into ordered layer groups, the classifier last (see the module docstring).

    Raises:
        ValueError: the model has no parameters outside its classifier to group.

    Example:
        >>> from cnnkit import Sequential
        >>> net = Sequential.from_spec("conv(4,3) relu flatten fc(10)", "8x8x1")
        >>> [g.name for g in layer_groups(net)]
        ['0', 'head']
    """
    head = head_path(model)
    groups: list[list[str]] = []
    for name, module in _candidates(model, head):
        if name == head or not any(True for _ in module.parameters()):
            continue
        if groups and _is_norm_only(module):
            groups[-1].append(name)
        else:
            groups.append([name])
    result = [LayerGroup(names[0], tuple(names)) for names in groups]
    return [*result, LayerGroup("head", (head,))]
