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


MASK_MIN_AGREEMENT = 0.999  # share of pixels whose class must match (argmax of near-equal logits)
TIE_TOLERANCE = 1e-4        # scores closer than this may come out in either order, or either side
                            # of the score threshold


def check_mask_agreement(expected: np.ndarray, actual: np.ndarray, *, what: str,
                         min_share: float = MASK_MIN_AGREEMENT) -> float:
    """Return the share of equal pixels of two class-index masks, or raise ExportError.

    The argmax of logits that differ by float rounding may flip where two classes tie, so
    masks are compared by the share of pixels that agree rather than exactly.

    Shape:
        expected, actual (N, H, W) integer class indices.

    Raises:
        ExportError: different shapes, or fewer than ``min_share`` of the pixels agree.
    """
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        raise ExportError(f"{what}: mask shape {actual.shape} differs from PyTorch's "
                          f"{expected.shape}")
    share = float(np.mean(expected == actual)) if expected.size else 1.0
    if share < min_share:
        raise ExportError(f"{what}: only {share:.4%} of the mask pixels equal PyTorch's (at "
                          f"least {min_share:.1%} needed); the export is not faithful, do not "
                          "use this file")
    return share


def check_detections(expected, actual, *, score_threshold: float, what: str,
                     rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                     tie: float = TIE_TOLERANCE) -> float:
    """Compare padded detections ``(boxes, scores, labels)``; return the largest difference.

    Scores are sorted in descending order, so near-equal scores compare elementwise even when
    they swap places. A score within ``tie`` of ``score_threshold`` may be kept on one side and
    zeroed on the other. Boxes and labels are compared where both sides kept the detection and
    its score is not within ``tie`` of another score of the same image (where the order is
    decided by rounding).

    Shape:
        boxes (N, D, 4), scores (N, D), labels (N, D), for both ``expected`` and ``actual``.

    Raises:
        ExportError: different shapes, or scores, labels or boxes that differ beyond that.
    """
    e_boxes, e_scores, e_labels = (np.asarray(a) for a in expected)
    a_boxes, a_scores, a_labels = (np.asarray(a) for a in actual)
    for name, e, a in (("boxes", e_boxes, a_boxes), ("scores", e_scores, a_scores),
                       ("labels", e_labels, a_labels)):
        if e.shape != a.shape:
            raise ExportError(f"{what}: {name} shape {a.shape} differs from PyTorch's {e.shape}")
    e_scores, a_scores = e_scores.astype(np.float64), a_scores.astype(np.float64)
    flipped = (((e_scores == 0) != (a_scores == 0))
               & (np.maximum(e_scores, a_scores) < score_threshold + tie))
    close = np.isclose(a_scores, e_scores, rtol=rtol, atol=atol) | flipped
    if not close.all():
        raise ExportError(f"{what}: scores differ from PyTorch's by up to "
                          f"{float(np.max(np.abs(a_scores - e_scores))):.3g}; the export is not "
                          "faithful, do not use this file")
    gaps = np.abs(e_scores[:, :, None] - e_scores[:, None, :])  # (N, D) -> (N, D, D)
    gaps[:, np.arange(gaps.shape[1]), np.arange(gaps.shape[1])] = np.inf
    firm = (e_scores > 0) & (a_scores > 0) & ~(gaps <= tie).any(axis=2)  # (N, D)
    if not np.array_equal(e_labels[firm], a_labels[firm]):
        raise ExportError(f"{what}: labels differ from PyTorch's at "
                          f"{int((e_labels[firm] != a_labels[firm]).sum())} detections; the "
                          "export is not faithful, do not use this file")
    worst = float(np.max(np.abs(a_scores - e_scores)[~flipped], initial=0.0))
    if firm.any():
        worst = max(worst, check_close(e_boxes[firm], a_boxes[firm], what=f"{what} (boxes)",
                                       rtol=rtol, atol=atol))
    return worst
