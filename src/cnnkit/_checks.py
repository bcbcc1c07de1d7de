"""Argument validation shared by every module: one place, one style of error message.

Every user-facing error names the argument, quotes the value with ``!r``, says what was
expected and, where it can, how to fix it (Keras' ``standardize_tuple`` is the model).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_SHAPE_RE = re.compile(r"^\s*(\d+)\s*[x×,]\s*(\d+)(?:\s*[x×,]\s*(\d+))?\s*$")


def standardize_tuple(value, n: int, name: str, *, allow_zero: bool = False) -> tuple[int, ...]:
    """Turn an int or a sequence of ``n`` ints into a tuple of ``n`` ints.

    Raises:
        TypeError: ``value`` is neither an int nor a sequence of ints.
        ValueError: wrong length, or a value below 1 (below 0 with ``allow_zero``).

    Example:
        >>> standardize_tuple(3, 2, "kernel_size")
        (3, 3)
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, int):
        out = (value,) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        out = tuple(value)
        if len(out) != n:
            raise ValueError(f"{name} must have {n} values, got {value!r} ({len(out)} values)")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
            raise TypeError(f"{name} must contain only ints, got {value!r}")
    else:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    low = 0 if allow_zero else 1
    if any(v < low for v in out):
        raise ValueError(f"{name} values must be >= {low}, got {value!r}")
    return out


def check_positive_int(value, name: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise a ValueError/TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


def check_probability(value, name: str, *, inclusive_high: bool = False) -> float:
    """Return ``value`` as a float in [0, 1) (or [0, 1] with ``inclusive_high``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    ok = 0.0 <= value <= 1.0 if inclusive_high else 0.0 <= value < 1.0
    if not ok:
        bound = "[0, 1]" if inclusive_high else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")
    return float(value)


def parse_input_shape(value, name: str = "input_shape") -> tuple[int, int, int]:
    """Parse an image shape written the tutorials' way, H×W×C, into PyTorch's (C, H, W).

    Accepts ``"32x32x3"``, ``"28x28"`` (one channel), ``(28, 28, 1)``, ``[28, 28]``.
    Tensors inside cnnkit are always (N, C, H, W); only this user-facing notation is H×W×C.

    Example:
        >>> parse_input_shape("32x32x3")
        (3, 32, 32)
    """
    if isinstance(value, str):
        m = _SHAPE_RE.match(value)
        if not m:
            raise ValueError(
                f"{name} must look like HxWxC (e.g. '28x28x1' or '32x32x3'), got {value!r}"
            )
        dims = tuple(int(g) for g in m.groups() if g is not None)
    elif isinstance(value, Sequence):
        dims = tuple(value)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise TypeError(f"{name} must contain ints (H, W[, C]), got {value!r}")
    else:
        raise TypeError(f"{name} must be 'HxWxC' or a tuple (H, W, C), got {value!r}")
    if len(dims) == 2:
        dims = (*dims, 1)
    if len(dims) != 3:
        raise ValueError(f"{name} must have 2 or 3 values (H, W[, C]), got {value!r}")
    h, w, c = dims
    if min(h, w, c) < 1:
        raise ValueError(f"{name} values must be >= 1, got {value!r}")
    return (c, h, w)


def format_shape_hwc(chw: Sequence[int]) -> str:
    """Write a (C, H, W) or (F,) shape the tutorials' way: ``'26x26x32'`` or ``'5408'``."""
    if len(chw) == 3:
        c, h, w = chw
        return f"{h}x{w}x{c}"
    return "x".join(str(d) for d in chw)
