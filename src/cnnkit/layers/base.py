"""The ``Layer`` base class: a ``torch.nn.Module`` that knows its input and output shapes.

A layer learns its input shape in one of three ways:

1. explicitly at construction (``Conv(32, 3, in_channels=1)``, ``Dense(10, in_features=5408)``),
   so it works in plain PyTorch code straight away;
2. from ``cnnkit.Sequential``, which calls ``build(input_shape)`` as soon as the shape is known;
3. lazily at the first forward call. Parameters created this way do not exist before that call,
   so create the optimizer *after* building (one forward pass with a dummy batch is enough).

Input shapes never include the batch: ``(C, H, W)`` for images, ``(F,)`` for flat vectors.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from cnnkit._checks import parse_input_shape, standardize_tuple
from cnnkit.errors import RoundingWarning
from cnnkit.layers.arithmetic import (DEFAULT_ROUNDING, check_axis, check_rounding,
                                      dropped_pixels, effective_kernel, rounding_formula,
                                      same_padding)

logger = logging.getLogger(__name__)


def parse_user_shape(value, name: str = "input_shape") -> tuple[int, ...]:
    """Parse a user-facing shape: H×W×C (``"28x28x1"``, ``(28, 28, 1)``) or flat (``784``).

    Returns:
        ``(C, H, W)`` for an image shape, ``(F,)`` for a flat one.

    Example:
        >>> parse_user_shape("28x28x1"), parse_user_shape(784)
        ((1, 28, 28), (784,))
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 1:
        (features,) = value
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"{name} must be HxWxC or a positive feature count, got {value!r}")
        return (features,)
    return parse_input_shape(value, name)


def format_value(value) -> str:
    """Write one argument the way the architecture-string parser reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Layer):
        return value.to_spec()
    if isinstance(value, tuple):
        if len(set(value)) == 1:
            return format_value(value[0])
        return "(" + ",".join(format_value(v) for v in value) + ")"
    return str(value) if not isinstance(value, float) else repr(value)


def format_token(name: str, args: Sequence = (), kwargs: dict | None = None) -> str:
    """Spec token ``name(arg,...,key=value)``, or just ``name`` without arguments.

    Example:
        >>> format_token("conv", [64, 3], {"stride": 2, "padding": "same"})
        'conv(64,3,stride=2,padding=same)'
    """
    parts = [format_value(a) for a in args]
    parts += [f"{k}={format_value(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({','.join(parts)})" if parts else name


class Layer(nn.Module):
    """Base class of cnnkit layers: shape inference, validation and a spec token.

    Subclasses set ``token`` (their name in the architecture-string notation, also the default
    layer name) and override ``compute_output_shape``, ``_build`` (create parameters),
    ``_check_input`` (reject incompatible shapes) and ``to_spec`` as needed.

    Attributes:
        name: the layer's name in messages (Sequential numbers them: ``conv1``, ``conv2``...).
        built: True once the parameters exist.
        input_shape: the (C, H, W) or (F,) shape the layer was last built for, or None.
    """

    token = "layer"

    def __init__(self, *, name: str | None = None):
        super().__init__()
        self.name = name
        self.built = False
        self.input_shape: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        """How messages name the layer: ``Conv 'conv2'``."""
        return f"{type(self).__name__} '{self.name or self.token}'"

    def build(self, input_shape: Sequence[int]) -> None:
        """Create the parameters for inputs of ``input_shape`` (no batch). Idempotent.

        Raises:
            ValueError: the shape does not suit the layer (wrong rank, wrong channel count).
        """
        shape = tuple(int(d) for d in input_shape)
        self._check_input(shape)
        if not self.built:
            self._build(shape)
            self.built = True
        self.input_shape = shape

    def _build(self, input_shape: tuple[int, ...]) -> None:
        """Create parameters; layers without parameters need nothing."""

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        """Raise ValueError when ``input_shape`` cannot feed this layer."""

    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Output shape (no batch) for ``input_shape`` (no batch); identity by default."""
        shape = tuple(input_shape)
        self._check_input(shape)
        return shape

    def to_spec(self) -> str:
        """This layer's token in the architecture-string notation (see cnnkit.models.spec)."""
        return self.token

    def _ensure_built(self, x: torch.Tensor) -> None:
        """Build from the first batch (lazy mode) and move the new parameters to its device."""
        if self.built:
            return
        self.build(tuple(x.shape[1:]))
        dtype = x.dtype if x.is_floating_point() else None
        self.to(device=x.device, dtype=dtype)
        logger.info("%s built lazily for input %s; create the optimizer after this call",
                    self.label, tuple(x.shape[1:]))

    def _require_image(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.label} needs an image volume (C, H, W), got the flat shape "
                f"{input_shape!r}; place it before Flatten/Dense layers"
            )


class WindowLayer(Layer):
    """Shared geometry of layers that slide a window: kernel size, stride, padding, dilation.

    ``padding`` is an int or (pad_h, pad_w) of zeros on each side, ``"valid"`` (no padding) or
    ``"same"`` (output size ceil(W / S); see ``arithmetic.same_padding``). Once built the
    attributes ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are 2-tuples of ints
    (``padding`` = the top/left padding), which is what receptive-field arithmetic needs.

    ``rounding`` ("warn" by default, "floor", "strict"; see ``layers.arithmetic``) decides what a
    non-integer O = (W − K + 2P)/S + 1 does. After a rounded-down shape, ``rounding_note`` says
    what was dropped (e.g. ``"floor: drops 1 row, 1 col"``; ``None`` when nothing was).
    """

    def __init__(self, kernel_size, stride, padding, dilation, rounding: str | None, *,
                 name: str | None = None, kernel_name: str = "kernel_size"):
        super().__init__(name=name)
        self.kernel_size = standardize_tuple(kernel_size, 2, kernel_name)
        self.stride = standardize_tuple(stride, 2, "stride")
        self.dilation = standardize_tuple(dilation, 2, "dilation")
        self.padding_mode, self.padding = self._parse_padding(padding)
        self.rounding = None if rounding is None else check_rounding(rounding)
        self.rounding_note: str | None = None
        self._warned_shapes: set[tuple[int, ...]] = set()

    @staticmethod
    def _parse_padding(padding):
        if isinstance(padding, str):
            mode = padding.lower()
            if mode == "valid":
                return "explicit", (0, 0)
            if mode == "same":
                return "same", "same"
            raise ValueError(
                f"padding must be an int, a (pad_h, pad_w) tuple, 'valid' or 'same', "
                f"got {padding!r}"
            )
        return "explicit", standardize_tuple(padding, 2, "padding", allow_zero=True)

    @property
    def effective_rounding(self) -> str:
        """This layer's ``rounding``, else its Sequential's, else "warn"."""
        return self.rounding or DEFAULT_ROUNDING

    def pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zero padding for an h×w input."""
        if self.padding_mode == "explicit":
            ph, pw = self.padding
            return ph, ph, pw, pw
        # The built size is answered from the cache, so a traced forward (torch.fx, ONNX) sees
        # plain ints rather than arithmetic on the input's shape.
        if self.input_shape is not None and (h, w) == self.input_shape[1:]:
            return self._built_pads
        return self._same_pads(h, w)

    def _same_pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        kh, kw = (effective_kernel(k, d) for k, d in zip(self.kernel_size, self.dilation))
        top, bottom = same_padding(h, kh, self.stride[0])
        left, right = same_padding(w, kw, self.stride[1])
        return top, bottom, left, right

    def build(self, input_shape: Sequence[int]) -> None:
        """Build, then resolve 'same' padding to ints for this input size."""
        super().build(input_shape)
        if self.padding_mode == "same":
            self._built_pads = self._same_pads(*self.input_shape[1:])
            self.padding = (self._built_pads[0], self._built_pads[2])

    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """(C_out, H_out, W_out) with O = (W − K + 2P)/S + 1 checked on both axes."""
        shape = tuple(input_shape)
        self._check_input(shape)
        _, h, w = shape
        top, bottom, left, right = self.pads(h, w)
        # 'same' padding defines the output as ceil(W / S), so it never fails the strict check.
        rounding = "floor" if self.padding_mode == "same" else self.effective_rounding
        rows = (h, self.kernel_size[0], self.stride[0], (top, bottom), self.dilation[0])
        cols = (w, self.kernel_size[1], self.stride[1], (left, right), self.dilation[1])
        same_numbers = rows == cols
        out_h = check_axis(self.label, "size" if same_numbers else "height", *rows, rounding)
        out_w = check_axis(self.label, "size" if same_numbers else "width", *cols, rounding)
        if self.padding_mode == "explicit":
            self._note_rounding(shape, rows, cols, (out_h, out_w), same_numbers)
        return (self._output_channels(shape[0]), out_h, out_w)

    def _note_rounding(self, shape: tuple[int, ...], rows: tuple, cols: tuple,
                       outs: tuple[int, int], same_numbers: bool) -> None:
        """Record (and under "warn", warn once per input shape) the rows/columns floor drops."""
        lost = (dropped_pixels(*rows), dropped_pixels(*cols))
        if not any(lost):
            self.rounding_note = None
            return
        counts = [f"{n} {word}{'s' if n > 1 else ''}" for n, word in zip(lost, ("row", "col")) if n]
        self.rounding_note = "floor: drops " + ", ".join(counts)
        if self.effective_rounding != "warn" or shape in self._warned_shapes:
            return
        self._warned_shapes.add(shape)
        axes = [("size", rows, outs[0])] if same_numbers else [
            (axis, numbers, out) for axis, numbers, out, n in
            (("height", rows, outs[0], lost[0]), ("width", cols, outs[1], lost[1])) if n]
        formulas = "; ".join(f"output {axis} O = (W − K + 2P)/S + 1 = "
                             f"{rounding_formula(*numbers)} is rounded down to {out}"
                             for axis, numbers, out in axes)
        dropped = " and ".join(f"the last {n} {word}{'s' if n > 1 else ''}"
                               for n, word in zip(lost, ("row", "column")) if n)
        warnings.warn(
            f"{self.label}: {formulas} (as PyTorch and Keras do), so {dropped} of the "
            f"{shape[1]}x{shape[2]} input are not used. Pass rounding='floor' to accept this "
            f"silently or rounding='strict' to refuse it.", RoundingWarning, stacklevel=3)

    def _output_channels(self, in_channels: int) -> int:
        return in_channels

    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        self._require_image(input_shape)

    def _spec_padding(self) -> dict:
        if self.padding_mode == "same":
            return {"padding": "same"}
        return {"padding": self.padding} if any(self.padding) else {}

    def _spec_rounding(self) -> dict:
        return {} if self.rounding in (None, DEFAULT_ROUNDING) else {"rounding": self.rounding}
