"""Compare an exported model's outputs with PyTorch's on the same inputs, or fail loudly."""
from __future__ import annotations

import numpy as np

from cnnkit.export.errors import ExportError

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-4


def check_close(expected: np.ndarray, actual: np.ndarray, *, what: str,
                rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> float:
    """Return the largest absolute difference, or raise ExportError if not within tolerance.

    ``|actual - expected| <= atol + rtol * |expected|`` must hold everywhere (NumPy's allclose).

    Args:
        expected: PyTorch's output.
        actual: the exported model's output for the same input.
        what: names the format, file and batch size in the error.

    Raises:
        ExportError: different shapes, NaNs, or values outside the tolerance.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise ExportError(f"{what}: output shape {actual.shape} differs from PyTorch's "
                          f"{expected.shape}")
    max_diff = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        raise ExportError(f"{what}: outputs differ from PyTorch's by up to {max_diff:.3g} "
                          f"(tolerance rtol={rtol}, atol={atol}); the export is not faithful, "
                          "do not use this file")
    return max_diff
