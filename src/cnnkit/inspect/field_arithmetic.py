"""Receptive-field arithmetic: how each layer maps the field of the units before it.

For every tensor of the forward pass we track, per axis (height and width):

- **size** ``r``: the side of one unit's field, in input pixels;
- **jump** ``j``: the distance in input pixels between the fields of two neighbouring units
  (the *effective stride*: the product of all strides so far);
- **top** ``t``: the input coordinate of the first pixel of unit 0's field (negative when the
  field reaches into the zero padding); its centre is ``start = t + (r − 1)/2``.

A window (convolution or pooling) with kernel ``k``, stride ``s``, padding ``p`` and dilation
``d`` has the effective kernel ``k_eff = d·(k − 1) + 1`` and maps them as::

    r_out = r_in + (k_eff − 1)·j_in      j_out = j_in·s      t_out = t_in − p·j_in
    (equivalently start_out = start_in + ((k_eff − 1)/2 − p)·j_in)

Elementwise layers (activations, batch norm, dropout) keep the field. Merging several tensors
(add, cat, mul) takes the union of their fields: the maximum over the paths of an Inception,
ResNet or DenseNet block. Global pooling, flatten and the dense layers after them see
``r_in + (n − 1)·j_in`` pixels (``n`` the pooled size): the whole image and its padding.

Sizes are *theoretical*: they are not clipped to the image (``exceeds_input`` says when a field
is larger than the image); :func:`~cnnkit.inspect.receptive_field.unit_region` also gives the
box clipped to the image.

This module holds the rules only; :mod:`cnnkit.inspect.tracing` applies them to every call of
a forward pass and :mod:`cnnkit.inspect.receptive_field` is the public API.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from cnnkit._checks import standardize_tuple

logger = logging.getLogger(__name__)

Pair = tuple[int, int]

__all__ = [
    "Field",
    "Pair",
    "UpWindow",
    "Window",
    "adaptive_window",
    "combine",
    "module_window",
    "sliding_window",
    "spatial",
    "upsample_window",
]


# ----------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Field:
    """Receptive field of unit (0, 0) of a tensor: size, jump and top, per axis (h, w)."""

    size: Pair
    jump: Pair
    top: Pair

    @property
    def start(self) -> tuple[float, float]:
        """Centre of unit (0, 0)'s field in input pixel coordinates."""
        return tuple(t + (r - 1) / 2 for t, r in zip(self.top, self.size))


@dataclass(frozen=True)
class Window:
    """One window op per axis: kernel, stride, padding (before the first pixel), dilation."""

    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair = (1, 1)

    def apply(self, field: Field) -> Field:
        k_eff = [d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel)]
        return Field(
            size=tuple(r + (ke - 1) * j for r, ke, j in zip(field.size, k_eff, field.jump)),
            jump=tuple(j * s for j, s in zip(field.jump, self.stride)),
            top=tuple(t - p * j for t, p, j in zip(field.top, self.padding, field.jump)),
        )


@dataclass(frozen=True)
class UpWindow:
    """An upsampling op per axis (transposed conv, Upsample): factor ``s``, ``taps`` inputs.

    Each output unit reads at most ``taps`` neighbouring input units (``ceil(k/s)`` for a
    transposed conv of kernel ``k``, 1 for nearest, 2 for bilinear), so::

        r_out = r_in + (taps − 1)·j_in      j_out = j_in / s      t_out = t_in − lead·j_in

    with ``lead`` the input units before unit 0's first one (``(k − 1 − p) // s`` for a
    transposed conv with padding ``p``; 0 for Upsample). A jump that ``s`` does not divide
    becomes fractional.
    """

    scale: Pair
    taps: Pair
    lead: Pair = (0, 0)

    def apply(self, field: Field) -> Field:
        return Field(
            size=tuple(r + (n - 1) * j for r, n, j in zip(field.size, self.taps, field.jump)),
            jump=tuple(j // s if j % s == 0 else j / s for j, s in zip(field.jump, self.scale)),
            top=tuple(t - a * j for t, a, j in zip(field.top, self.lead, field.jump)),
        )


def upsample_window(module: nn.Module) -> UpWindow | None:
    """The UpWindow of a cnnkit ``ConvTranspose``/``Upsample`` (or torch equivalents), else None."""
    if getattr(module, "transposed", False) and hasattr(module, "kernel_size"):
        kernel = standardize_tuple(module.kernel_size, 2, "kernel_size")
        stride = standardize_tuple(module.stride, 2, "stride")
        padding = standardize_tuple(module.padding, 2, "padding", allow_zero=True)
        return UpWindow(stride, tuple(-(-k // s) for k, s in zip(kernel, stride)),
                        tuple(max(0, (k - 1 - p) // s)
                              for k, p, s in zip(kernel, padding, stride)))
    factor = getattr(module, "scale_factor", None)
    if isinstance(factor, (int, float)) and factor == int(factor) and factor >= 1:
        taps = 2 if getattr(module, "mode", "nearest") == "bilinear" and factor > 1 else 1
        return UpWindow((int(factor),) * 2, (taps, taps))
    return None


# ----------------------------------------------------------------------------- layer rules


def spatial(shape: Sequence[int]) -> Pair:
    """(H, W) of a per-image (C, H, W) shape; a shape without a grid counts as 1x1."""
    return (int(shape[-2]), int(shape[-1])) if len(shape) == 3 else (1, 1)


def _padding_pair(padding, kernel: Pair, dilation: Pair) -> Pair:
    """Resolve a conv/pool padding (int, pair, 'same' or 'valid') to the pixels before pixel 0."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":  # PyTorch puts the smaller half of d·(k − 1) first
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return standardize_tuple(padding, 2, "padding", allow_zero=True)


def sliding_window(kernel, stride, padding, dilation=1) -> Window:
    """The window of a conv/pool call from its arguments (stride None: the kernel, as pooling)."""
    kernel = standardize_tuple(kernel, 2, "kernel_size")
    stride = kernel if stride is None or stride == [] else standardize_tuple(stride, 2, "stride")
    dilation = standardize_tuple(dilation, 2, "dilation")
    return Window(kernel, stride, _padding_pair(padding, kernel, dilation), dilation)


def _global(in_shape: Sequence[int]) -> Window:
    """A window over the whole (H, W) grid (global pooling, flatten, dense).

    Its stride is 0: every output unit sees the same pixels, so a later flatten adds nothing.
    """
    return Window(kernel=spatial(in_shape), stride=(0, 0), padding=(0, 0))


def adaptive_window(in_shape: Sequence[int], output_size) -> Window:
    """Adaptive pooling: exact where an axis divides evenly, else the whole axis (upper bound)."""
    in_size = spatial(in_shape)
    out = standardize_tuple(output_size, 2, "output_size") if output_size is not None else in_size
    out = tuple(n if o is None else o for o, n in zip(out, in_size))
    even = [n % o == 0 for n, o in zip(in_size, out)]
    kernel = tuple(n // o if ok else n for n, o, ok in zip(in_size, out, even))
    stride = tuple(k if ok else 0 for k, ok in zip(kernel, even))
    return Window(kernel=kernel, stride=stride, padding=(0, 0))


def module_window(module: nn.Module, in_shape) -> Window | UpWindow | None:
    """The window op of a conv/pool module, or None for the shape-based generic rule."""
    if len(in_shape) != 3:
        return None
    if hasattr(module, "output_size") and "Adaptive" in type(module).__name__:
        return adaptive_window(in_shape, module.output_size)
    up = upsample_window(module)
    if up is not None:
        return up
    if getattr(module, "transposed", False):
        return None  # other transposed convolutions: left to the generic rule (warned)
    if hasattr(module, "kernel_size") and hasattr(module, "stride"):
        return sliding_window(module.kernel_size, module.stride, getattr(module, "padding", 0),
                              getattr(module, "dilation", 1))
    return None


def combine(inputs: list[tuple[Field, tuple[int, ...]]], out_shape, window: Window | None,
            where: str) -> Field:
    """Field of an op's output from its tensor inputs' (field, per-image shape) pairs."""
    if window is not None:
        return window.apply(inputs[0][0])
    if len(out_shape) != 3:  # the grid is gone (flatten, dense, mean over H and W)
        inputs = [(_global(shape).apply(f), (1,)) for f, shape in inputs]
    elif any(spatial(shape) != spatial(out_shape) for _, shape in inputs):
        logger.warning("receptive field: %s changes the grid %s -> %s in a way cnnkit does not "
                       "know; its field is taken as the whole input", where,
                       [spatial(s) for _, s in inputs], spatial(out_shape))
        inputs = [(_global(shape).apply(f), (1,)) for f, shape in inputs]
    fields = [f for f, _ in inputs]
    if len(fields) == 1:
        return fields[0]
    # union of the inputs' fields: the maximum over paths
    top = tuple(min(f.top[a] for f in fields) for a in range(2))
    bottom = tuple(max(f.top[a] + f.size[a] for f in fields) for a in range(2))
    return Field(size=(bottom[0] - top[0], bottom[1] - top[1]),
                 jump=tuple(max(f.jump[a] for f in fields) for a in range(2)), top=top)
