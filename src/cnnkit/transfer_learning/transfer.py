"""``transfer``: the one call that turns a trained network into a starting point for new classes,
and ``pretrained_model``: a model rebuilt from a run folder, a weights file or a module.

Example:
    >>> import cnnkit
    >>> from cnnkit.models import create
    >>> model = transfer(create("resnet18", num_classes=10, input_size=32), num_classes=3,
    ...                  freeze="all_but_head")
    >>> model.fc.out_features, model.fc.weight.requires_grad, model.conv1.weight.requires_grad
    (3, True, False)
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

from torch import nn

from cnnkit._checks import format_shape_hwc
from cnnkit.transfer_learning.adapt import adapt_input_channels, first_conv
from cnnkit.transfer_learning.freeze import freeze as freeze_layers
from cnnkit.transfer_learning.head import replace_head
from cnnkit.transfer_learning.weights import LoadReport, load_pretrained, read_state_dict
from cnnkit.train.pipeline import build_model
from cnnkit.run.folder import MODEL_FILE, read_json

log = logging.getLogger(__name__)

FREEZE_MODES = (None, "all_but_head", "all-but-head")


def _build(name_or_spec: str, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return build_model(name_or_spec, num_classes=num_classes, input_shape=input_shape)


def _from_weights_file(source, model: str, input_shape, strict: bool):
    """Build ``model`` with the file's input channels (read from its first conv) and load it."""
    tensors, _ = read_state_dict(source)
    probe = _build(model, 10, input_shape)
    conv_name, _ = first_conv(probe)
    stored = tensors.get(f"{conv_name}.weight")
    channels = input_shape[0] if stored is None or stored.ndim != 4 else stored.shape[1]
    net = _build(model, 10, (channels, *input_shape[1:])) if channels != input_shape[0] else probe
    return net, load_pretrained(net, tensors, strict=strict)


def pretrained_model(source, *, model: str | None = None,
                     input_shape: tuple[int, int, int] | None = None,
                     strict: bool = True) -> tuple[nn.Module, LoadReport]:
    """A model holding pretrained weights, and the report of how they loaded.

    Args:
        source: a run folder (its architecture and weights), a weights file (needs ``model``)
            or an ``nn.Module`` (deep-copied, so the original is untouched).
        model: registry name or spec string of a weights file's architecture.
        input_shape: (C, H, W) of the new images: zoo models are built for that size (their
            global pooling takes any size); the channels come from the weights and are adapted
            later by :func:`transfer`. None: the run's own input shape (required for files).
        strict: refuse weights that do not fit (the classifier excepted: it is replaced).

    Raises:
        ValueError: a weights file without ``model`` or ``input_shape``.
        CheckpointError: weights that do not fit (strict), unreadable files.

    Example:
        >>> net, report = pretrained_model("runs/mnist04")   # doctest: +SKIP
    """
    if isinstance(source, nn.Module):
        net = copy.deepcopy(source)
        return net, load_pretrained(net, source, strict=strict)
    path = Path(source)
    if path.is_dir():
        meta = read_json(path / MODEL_FILE)
        arch = meta.get("architecture") or {}
        name = model or arch.get("name") or arch.get("spec")
        if not name:
            raise ValueError(f"{str(path / MODEL_FILE)!r} has no architecture; pass "
                             "model=<registry name or spec>")
        stored_shape = tuple(meta["input_shape"])
        shape = (stored_shape[0], *(input_shape or stored_shape)[1:])
        if arch.get("type") == "spec" or (isinstance(name, str) and " " in name):
            shape = stored_shape  # a flatten + fc stack only takes the size it was built for
        net = _build(name, len(meta["class_names"]), shape)
        return net, load_pretrained(net, path, strict=strict)
    if model is None or input_shape is None:
        raise ValueError(f"{str(source)!r} is a weights file: say which architecture it holds "
                         "with model=<registry name or spec> and give input_shape=(C, H, W)")
    return _from_weights_file(source, model, tuple(input_shape), strict)


def transfer(model: nn.Module, num_classes: int, *, weights=None, in_channels: int | None = None,
             freeze: str | None = None, strict: bool = True) -> nn.Module:
    """Prepare ``model`` for new classes: load weights, adapt channels, new head, freeze.

    In order, each step optional but the head:

    1. ``weights``: load them with :func:`~cnnkit.transfer_learning.weights.load_pretrained`
       (the classifier is skipped when its shape differs; the report is logged);
    2. ``in_channels``: adapt the first conv (:func:`~cnnkit.transfer_learning.adapt.
       adapt_input_channels`: RGB -> gray sums the filters, gray -> RGB spreads them);
    3. replace the classifier with a freshly initialised one for ``num_classes``;
    4. ``freeze="all_but_head"``: freeze everything but the new classifier (BatchNorm
       statistics included).

    Args:
        model: a zoo model, a ``cnnkit.Sequential`` or any module ending in ``nn.Linear``;
            modified in place and returned.
        num_classes: classes of the new task.
        weights: a run folder, a weights file, a module or a state dict to load first.
        in_channels: channels of the new images (None: keep).
        freeze: ``None`` (everything trains) or ``"all_but_head"``.
        strict: passed to ``load_pretrained``.

    Shape:
        The model maps (N, in_channels, H, W) -> (N, num_classes).

    Raises:
        ValueError: an unknown ``freeze``; see the steps' own functions for the rest.

    Example:
        >>> net = transfer(create("lenet5", num_classes=10), 5, weights="runs/mnist")  # doctest: +SKIP
    """
    if freeze not in FREEZE_MODES:
        raise ValueError(f"freeze must be None or 'all_but_head', got {freeze!r}; freeze other "
                         "parts with cnnkit.transfer_learning.freeze(model, up_to=...)")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}; load a "
                        "run folder with cnnkit.transfer_learning.pretrained_model(path)")
    if weights is not None:
        load_pretrained(model, weights, strict=strict)
    if in_channels is not None and in_channels != first_conv(model)[1].weight.shape[1]:
        adapt_input_channels(model, in_channels)
    replace_head(model, num_classes)
    if freeze is not None:
        freeze_layers(model, all_but_head=True)
    shape = getattr(model, "input_shape", None)
    log.info("transfer: %s -> %d classes%s", type(model).__name__, num_classes,
             f" for {format_shape_hwc(shape)} images" if shape and len(shape) == 3 else "")
    return model
