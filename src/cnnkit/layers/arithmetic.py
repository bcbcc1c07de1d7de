"""Output-size arithmetic of sliding windows (convolution and pooling) and its error messages.

The tutorials' formula for one spatial axis is

    O = (W − K + 2P)/S + 1

with W the input size, K the (effective) window size, P the zero padding on each side and S the
stride. With dilation D the window covers K_eff = D·(K − 1) + 1 pixels. PyTorch silently rounds
O down. cnnkit's ``rounding`` argument chooses what happens when O is not an integer:

- ``"warn"`` (the default): round down as PyTorch and Keras do, and warn once per layer
  (``cnnkit.errors.RoundingWarning``) with the formula and the rows/columns that are dropped;
- ``"floor"``: round down silently;
- ``"strict"``: refuse, saying which padding or stride would fit.
"""
from __future__ import annotations

import math

ROUNDING_MODES = ("warn", "strict", "floor")
DEFAULT_ROUNDING = "warn"


def conv_output_size(w: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Output size of a convolution or pooling window along one axis, rounded down as PyTorch does.

    Args:
        w: input size W (pixels).
        k: window (kernel) size K.
        s: stride S.
        p: zero padding P on each side.
        d: dilation D; the window then spans K_eff = D·(K − 1) + 1 pixels.

    Shape:
        O = floor((W − K_eff + 2P) / S) + 1. The result is 0 or negative when the window does
        not fit in the padded input.

    Example:
        >>> conv_output_size(28, 3)      # 28x28 image, 3x3 filter
        26
        >>> conv_output_size(7, 3, s=2)
        3
    """
    return axis_output_size(w, effective_kernel(k, d), s, 2 * p)


def effective_kernel(k: int, d: int = 1) -> int:
    """Pixels spanned by a window of size ``k`` with dilation ``d``: D·(K − 1) + 1."""
    return d * (k - 1) + 1


def axis_output_size(w: int, k_eff: int, s: int, pad_total: int) -> int:
    """floor((W − K_eff + pad_total)/S) + 1 for a padding split unevenly ("same")."""
    return (w - k_eff + pad_total) // s + 1


def same_padding(w: int, k_eff: int, s: int) -> tuple[int, int]:
    """(before, after) padding of 'same' mode along one axis: the output size is ceil(W / S).

    Follows Keras/TensorFlow: the total padding is max((O − 1)·S + K_eff − W, 0), and when it is
    odd the extra pixel goes after (bottom/right). With stride 1 and an odd kernel it is
    symmetric: (K_eff − 1)/2 on each side.

    Example:
        >>> same_padding(28, 3, 1)
        (1, 1)
        >>> same_padding(28, 2, 2)
        (0, 0)
        >>> same_padding(7, 4, 1)
        (1, 2)
    """
    out = math.ceil(w / s)
    total = max((out - 1) * s + k_eff - w, 0)
    return total // 2, total - total // 2


def check_rounding(value) -> str:
    """Validate a ``rounding`` argument: "warn", "strict" or "floor"."""
    if value not in ROUNDING_MODES:
        raise ValueError(
            f"rounding must be 'warn' (drop leftover pixels as PyTorch does, with a warning), "
            f"'floor' (the same, silently) or 'strict' (refuse strides that do not fit), "
            f"got {value!r}"
        )
    return value


def _join_or(values: list[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _formula(w: int, k_eff: int, p: int, s: int) -> str:
    return f"({w} − {k_eff} + 2·{p})/{s} + 1"


def strict_fixes(w: int, k_eff: int, s: int, p: int, unit: str = "columns") -> list[str]:
    """Suggestions that make (W − K + 2P) divisible by S: a nearby padding and smaller strides."""
    fixes = []
    paddings = [q for q in range(k_eff) if q != p and (w - k_eff + 2 * q) % s == 0
                and axis_output_size(w, k_eff, s, 2 * q) >= 1]
    if paddings:
        q = min(paddings, key=lambda v: (abs(v - p), v))
        out = axis_output_size(w, k_eff, s, 2 * q)
        fixes.append(f"padding={q} gives {_formula(w, k_eff, q, s)} = {out}")
    strides = [t for t in range(1, s) if (w - k_eff + 2 * p) % t == 0]
    if strides:
        fixes.append(f"stride={_join_or(strides)} fits")
    fixes.append(f'or pass rounding="floor" to drop the leftover {unit} as PyTorch does')
    return fixes


def check_axis(label: str, axis: str, w: int, k: int, s: int, pads: tuple[int, int], d: int,
               rounding: str) -> int:
    """Output size along one axis, raising the tutorial-style errors.

    Args:
        label: the layer as the user knows it, e.g. ``"Conv 'conv2'"``.
        axis: ``"size"`` when both axes have the same numbers, else ``"height"`` or ``"width"``.
        w, k, s, d: input size, window size, stride and dilation.
        pads: (before, after) padding.
        rounding: "strict" refuses a non-integer O; "floor" and "warn" round down (the caller
            warns, see :func:`dropped_pixels`).

    Raises:
        ValueError: the output is 0 or less (always), or O is not an integer in strict mode.
    """
    k_eff = effective_kernel(k, d)
    before, after = pads
    out = axis_output_size(w, k_eff, s, before + after)
    p_text = before if before == after else f"({before}+{after})/2"
    formula = f"({w} − {k_eff} + 2·{p_text})/{s} + 1"
    kernel_note = f" (K = {k_eff} is the {k}-wide window with dilation {d})" if d > 1 else ""
    if out < 1:
        where = "width" if axis == "size" else axis
        raise ValueError(
            f"{label}: the volume shrinks to {out} along the {where}: "
            f"O = (W − K + 2P)/S + 1 = {formula} = {out}{kernel_note}. The {w}-pixel input is too "
            f"small for this window. Fix: use padding='same', remove an earlier pooling or strided "
            f"layer, or feed a larger input."
        )
    if rounding == "strict" and before == after and (w - k_eff + before + after) % s != 0:
        value = (w - k_eff + before + after) / s + 1
        unit = "rows" if axis == "height" else "columns"
        fixes = "; ".join(strict_fixes(w, k_eff, s, before, unit))
        raise ValueError(
            f"{label}: output {axis} O = (W − K + 2P)/S + 1 = {formula} = {value:.2f} is not an "
            f"integer{kernel_note}. Fixes: {fixes}."
        )
    return out


def dropped_pixels(w: int, k: int, s: int, pads: tuple[int, int], d: int = 1) -> int:
    """Rows (or columns) of the padded input that no window reaches when O is rounded down.

    Shape:
        (W − K_eff + P_before + P_after) mod S.

    Example:
        >>> dropped_pixels(29, 2, 2, (0, 0))   # 29 -> 14 under a 2x2 pool: the last row is unused
        1
    """
    return (w - effective_kernel(k, d) + pads[0] + pads[1]) % s


def rounding_formula(w: int, k: int, s: int, pads: tuple[int, int], d: int = 1) -> str:
    """The tutorial formula with the numbers and its value: ``(29 − 2 + 2·0)/2 + 1 = 14.50``."""
    k_eff = effective_kernel(k, d)
    before, after = pads
    p_text = before if before == after else f"({before}+{after})/2"
    value = (w - k_eff + before + after) / s + 1
    return f"({w} − {k_eff} + 2·{p_text})/{s} + 1 = {value:.2f}"


def window_output_size(w: int, k: int, s: int = 1, p: int = 0, d: int = 1, *,
                       ceil_mode: bool = False) -> int:
    """Output size of a window along one axis as PyTorch computes it, ``ceil_mode`` included.

    Args:
        w: input size W (pixels).
        k: window (kernel) size K.
        s: stride S.
        p: zero padding P on each side.
        d: dilation D; the window then spans K_eff = D·(K − 1) + 1 pixels.
        ceil_mode: round up instead of down (``nn.MaxPool2d(ceil_mode=True)``).

    Shape:
        O = floor((W − K_eff + 2P) / S) + 1, as :func:`conv_output_size`. With ``ceil_mode``
        the floor is a ceil, and (PyTorch's rule) a last window that would start in the right
        padding is dropped: O − 1 is reduced by one when (O − 1)·S >= W + P.

    Example:
        >>> window_output_size(5, 2, s=2)
        2
        >>> window_output_size(5, 2, s=2, ceil_mode=True)
        3
    """
    if not ceil_mode:
        return conv_output_size(w, k, s, p, d)
    out = math.ceil((w - effective_kernel(k, d) + 2 * p) / s) + 1
    if (out - 1) * s >= w + p:
        out -= 1
    return out
