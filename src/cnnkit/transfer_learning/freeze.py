"""Freeze and unfreeze parts of a model, and count trainable vs frozen parameters.

Freezing a module means three things:

1. its parameters get ``requires_grad = False``: no gradient is computed for them, and
   ``cnnkit.train.build_optimizer`` leaves them out (no optimizer state, no weight decay), so
   they stay bit-identical through training;
2. its BatchNorm layers stay in eval mode even inside ``model.train()``, so their running mean
   and variance do not move (a frozen part computes exactly what it computed before);
3. nothing else: dropout still behaves as usual, and the forward pass is unchanged.

Mechanism for (2): each frozen norm layer gets the attribute ``cnnkit_frozen = True`` and, once,
a forward pre-hook (:func:`keep_frozen_norm_in_eval`) that switches the layer to eval mode just
before it runs whenever the flag is set. ``unfreeze`` clears the flag; the next
``model.train()`` (the Trainer calls it every epoch) puts the layer back in training mode.

What to freeze is chosen by one of:

* ``layers``: a layer-group name (see :func:`~cnnkit.transfer_learning.groups.layer_groups`),
  any dotted module name (``"layer1.0.conv1"``), a group index (``0``, ``-2``), or a list of them;
* ``up_to``: every group from the input up to and including the one named (or indexed);
* ``all_but_head=True``: everything except the classifier;
* nothing: the whole model.

Example:
    >>> from cnnkit.models import create
    >>> model = create("resnet18", num_classes=5, input_size=32)
    >>> freeze(model, all_but_head=True)
    >>> trainable_summary(model).trainable
    2565
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from cnnkit.layers.norm import BatchNorm
from cnnkit.transfer_learning.groups import LayerGroup, layer_groups

log = logging.getLogger(__name__)

# torch's BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm, and cnnkit's own ``bn`` layer
_NORM_TYPES = (nn.modules.batchnorm._NormBase, BatchNorm)
_HOOK_ATTR = "_cnnkit_freeze_hook"


def keep_frozen_norm_in_eval(module: nn.Module, args) -> None:
    """Forward pre-hook: a norm layer flagged ``cnnkit_frozen`` runs in eval mode."""
    if module.training and getattr(module, "cnnkit_frozen", False):
        module.eval()


def group_index(groups: list[LayerGroup], key, what: str) -> int:
    """Index of the group named ``key`` (a group name, or a module inside it) or at index ``key``."""
    names = [g.name for g in groups]
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise TypeError(f"{what} must be a layer-group name or index, got {key!r}")
    if isinstance(key, int):
        if not -len(groups) <= key < len(groups):
            raise ValueError(f"{what}={key!r} is out of range: the model has {len(groups)} layer "
                             f"groups ({', '.join(names)})")
        return key % len(groups)
    for i, group in enumerate(groups):
        if key == group.name or any(key == m or key.startswith(m + ".") for m in group.modules):
            return i
    raise ValueError(f"{what}={key!r} names no layer group or module of this model; layer "
                     f"groups: {', '.join(names)}")


def _modules_for(model: nn.Module, groups: list[LayerGroup], key) -> list[nn.Module]:
    """A group's modules (name or index), or the one module with that dotted name."""
    if isinstance(key, str) and key not in [g.name for g in groups]:
        group_index(groups, key, "layers")  # a clear error when the name is unknown
        try:
            return [model.get_submodule(key)]
        except AttributeError:
            raise ValueError(f"layers={key!r} names no module of this model; layer groups: "
                             f"{', '.join(g.name for g in groups)}") from None
    return [model.get_submodule(m) for m in groups[group_index(groups, key, "layers")].modules]


def _select(model: nn.Module, layers, up_to, all_but_head: bool) -> list[nn.Module]:
    """The modules chosen by exactly one selector (none: the whole model)."""
    given = [name for name, value in (("layers", layers), ("up_to", up_to),
                                      ("all_but_head", all_but_head or None)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of layers, up_to or all_but_head, got {', '.join(given)}")
    if not given:
        return [model]
    groups = layer_groups(model)
    if layers is not None:
        keys = [layers] if isinstance(layers, (str, int)) else list(layers)
        return [module for key in keys for module in _modules_for(model, groups, key)]
    chosen = groups[:-1] if all_but_head else groups[:group_index(groups, up_to, "up_to") + 1]
    return [model.get_submodule(m) for group in chosen for m in group.modules]


def _set_frozen(modules: Sequence[nn.Module], frozen: bool) -> int:
    count = 0
    for module in modules:
        for p in module.parameters():
            count += p.numel() if p.requires_grad == frozen else 0
            p.requires_grad_(not frozen)
        for sub in module.modules():
            if isinstance(sub, _NORM_TYPES):
                sub.cnnkit_frozen = frozen
                if frozen and getattr(sub, _HOOK_ATTR, None) is None:
                    setattr(sub, _HOOK_ATTR, sub.register_forward_pre_hook(
                        keep_frozen_norm_in_eval))
    return count


def freeze(model: nn.Module, layers=None, *, up_to=None, all_but_head: bool = False) -> None:
    """Freeze part of ``model`` in place (see the module docstring for what freezing means).

    Args:
        model: any ``nn.Module`` (zoo model, Sequential, your own).
        layers: a layer-group name, a dotted module name, a group index, or a list of them.
        up_to: freeze every layer group from the input up to and including this one.
        all_but_head: freeze everything except the classifier.

    Raises:
        ValueError: more than one selector, or a name/index the model does not have (the
            message lists the layer groups).

    Example:
        >>> freeze(model, up_to="layer2")   # doctest: +SKIP
    """
    changed = _set_frozen(_select(model, layers, up_to, all_but_head), True)
    log.info("froze %d parameters", changed)


def unfreeze(model: nn.Module, layers=None, *, up_to=None, all_but_head: bool = False) -> None:
    """Undo :func:`freeze` for the selected part (same selectors; nothing = the whole model).

    Unfrozen BatchNorm layers return to training mode at the next ``model.train()``.

    Example:
        >>> unfreeze(model, "layer4")   # doctest: +SKIP
    """
    changed = _set_frozen(_select(model, layers, up_to, all_but_head), False)
    log.info("unfroze %d parameters", changed)


@dataclass(frozen=True)
class TrainableSummary:
    """Trainable vs frozen parameter counts, overall and per layer group.

    Attributes:
        trainable: parameters with ``requires_grad``.
        frozen: parameters without.
        groups: ``(group name, trainable, frozen)`` per layer group, input first.
    """

    trainable: int
    frozen: int
    groups: tuple[tuple[str, int, int], ...]

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def __str__(self) -> str:
        width = max([len("layer group")] + [len(name) for name, _, _ in self.groups])
        lines = [f"{'layer group':<{width}}  {'trainable':>12}  {'frozen':>12}"]
        for name, trainable, frozen in self.groups:
            lines.append(f"{name:<{width}}  {trainable:>12,}  {frozen:>12,}")
        share = 100.0 * self.trainable / self.total if self.total else 0.0
        lines.append(f"{'total':<{width}}  {self.trainable:>12,}  {self.frozen:>12,}  "
                     f"({share:.1f}% trainable)")
        return "\n".join(lines)


def trainable_summary(model: nn.Module) -> TrainableSummary:
    """Count trainable and frozen parameters, overall and per layer group.

    Example:
        >>> print(trainable_summary(model))   # doctest: +SKIP
        layer group     trainable        frozen
        conv1                   0         9,536
        ...
    """
    rows = []
    for group in layer_groups(model):
        params = group.parameters(model)
        rows.append((group.name, sum(p.numel() for p in params if p.requires_grad),
                     sum(p.numel() for p in params if not p.requires_grad)))
    params = list(model.parameters())
    return TrainableSummary(sum(p.numel() for p in params if p.requires_grad),
                            sum(p.numel() for p in params if not p.requires_grad), tuple(rows))
