"""Receptive fields: which input pixels each unit of each layer can see.

For every layer call of a forward pass, per axis (height and width): the **size** of one unit's
field in input pixels, the **jump** between the fields of neighbouring units (the *effective
stride*) and the **top** and **start** (centre) of unit (0, 0)'s field. The rule of each
layer (``r_out = r_in + (k_eff − 1)·j_in``, ``j_out = j_in·s``, ``t_out = t_in − p·j_in``;
the union over the paths of a merge) is in :mod:`cnnkit.inspect.field_arithmetic`.

Sizes are *theoretical*: they are not clipped to the image (``exceeds_input`` says when a field
is larger than the image); :func:`unit_region` also gives the box clipped to the image.

This module is the public API. :mod:`cnnkit.inspect.tracing` turns a forward pass into layer
records (``torch.fx``; a model fx cannot trace falls back to its leaf modules in call order,
with a warning: exact for plain stacks, approximate for branching models), and
:mod:`cnnkit.inspect.measured_field` checks a field with the gradient
(:func:`empirical_receptive_field`, re-exported here with ``LayerTrace``, ``trace_layers`` and
``resolve_input_shape``).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnkit.inspect.field_arithmetic import Pair
from cnnkit.inspect.measured_field import empirical_receptive_field
from cnnkit.inspect.tracing import (LayerTrace, check_unit, find_call, resolve_image_shape,
                                    resolve_input_shape, trace_layers)

__all__ = [
    "LayerTrace",
    "RFInfo",
    "UnitRegion",
    "empirical_receptive_field",
    "receptive_fields",
    "resolve_input_shape",
    "trace_layers",
    "unit_region",
]


# ----------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class RFInfo:
    """Receptive field of the units of one layer's output.

    Attributes:
        name: module qualified name, or fx node name for a function (``"add"``).
        node: unique name of this call (use it when a module is called more than once).
        op: module class or function name.
        output_shape: per-image output shape, (C, H, W) or (F,).
        size: (h, w) side of one unit's field in input pixels (theoretical, not clipped).
        jump: (h, w) effective stride: input pixels between neighbouring units' fields.
        start: (h, w) centre of unit (0, 0)'s field in input pixel coordinates.
        top: (h, w) first input row/column of unit (0, 0)'s field (negative inside the padding).
        exceeds_input: whether the field is larger than the input image on either axis.
    """

    name: str
    node: str
    op: str
    output_shape: tuple[int, ...]
    size: Pair
    jump: Pair
    start: tuple[float, float]
    top: Pair
    exceeds_input: bool


@dataclass(frozen=True)
class UnitRegion:
    """Input pixels seen by one unit: boxes as (top, left, bottom, right), bottom/right exclusive.

    ``box`` is the theoretical field (may extend past the image into the zero padding);
    ``clipped`` is its intersection with the image, ready to draw or to index
    ``image[top:bottom, left:right]``.
    """

    box: tuple[int, int, int, int]
    clipped: tuple[int, int, int, int]


# ----------------------------------------------------------------------------- fields of a model


def _info(trace: LayerTrace, image: Pair) -> RFInfo:
    f = trace.field
    return RFInfo(trace.name, trace.node, trace.op, trace.output_shape, f.size, f.jump, f.start,
                  f.top, f.size[0] > image[0] or f.size[1] > image[1])


def receptive_fields(model: nn.Module, input_shape=None, *, device="cpu") -> list[RFInfo]:
    """Receptive field, jump and start of every layer of ``model`` on an image.

    Args:
        model: the network.
        input_shape: ``"32x32x3"`` or (H, W, C); None uses the model's own (see
            :func:`resolve_input_shape`).
        device: the model's device.

    Returns:
        One :class:`RFInfo` per layer call, in execution order.

    Raises:
        ValueError: no input shape known, or the input is not an image (C, H, W).

    Example:
        >>> lenet = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2))
        >>> [info.size for info in receptive_fields(lenet, "32x32x1")]
        [(5, 5), (6, 6)]
    """
    chw = resolve_image_shape(model, input_shape)
    traces, _ = trace_layers(model, chw, device=device)
    return [_info(t, chw[1:]) for t in traces if t.field is not None]


def unit_region(model: nn.Module, layer_name: str, unit=(0, 0), input_shape=None, *,
                device="cpu") -> UnitRegion:
    """Input box seen by one output unit of a layer.

    Args:
        model: the network.
        layer_name: module name (``"features.3"``) or node name from :func:`receptive_fields`.
        unit: (row, column) of the unit in the layer's output grid ((0, 0) for a flat layer).
        input_shape: ``"32x32x3"`` or (H, W, C); None uses the model's own.
        device: the model's device.

    Returns:
        :class:`UnitRegion` with ``box`` = (top, left, bottom, right), bottom and right
        exclusive, in input pixel coordinates (``top = t + row·jump``, ``bottom = top + size``);
        it may reach past the image into the zero padding; ``clipped`` is cut to the image.
        Where a layer's stride does not fit its input (floor rounding drops the last rows or
        columns), a unit at the bottom/right edge sees less than ``clipped``: the box counts
        positions of the dropped rows as if a window covered them.

    Raises:
        ValueError: unknown layer, ambiguous name, or a unit outside the output grid.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2))
        >>> unit_region(net, "1", (0, 0), "8x8x1").box
        (-1, -1, 3, 3)
    """
    chw = resolve_image_shape(model, input_shape)
    traces, _ = trace_layers(model, chw, device=device)
    trace = find_call([t for t in traces if t.field is not None], layer_name)
    unit = check_unit(unit, trace)
    f = trace.field
    top, left = (f.top[a] + unit[a] * f.jump[a] for a in range(2))
    box = (top, left, top + f.size[0], left + f.size[1])
    height, width = chw[1:]
    clipped = (max(box[0], 0), max(box[1], 0), min(box[2], height), min(box[3], width))
    return UnitRegion(box, clipped)
