"""Class-aware non-maximum suppression: a vectorised torch version and a plain-Python reference.

torchvision's ``batched_nms`` is not available to us (torchvision does not work in this
environment and cnnkit does not depend on it), so this module is our own implementation; the
tests check it against :func:`nms_reference` on random boxes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cnnkit._checks import check_probability
from cnnkit.tasks.boxes import box_iou

__all__ = ["batched_nms", "nms_reference"]


def _check_inputs(boxes, scores, classes, iou_threshold) -> float:
    for name, value in (("boxes", boxes), ("scores", scores), ("classes", classes)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (K, 4), got {tuple(boxes.shape)!r}")
    k = boxes.shape[0]
    if scores.shape != (k,):
        raise ValueError(
            f"scores must have shape ({k},) to match boxes, got {tuple(scores.shape)!r}"
        )
    if classes.shape != (k,):
        raise ValueError(
            f"classes must have shape ({k},) to match boxes, got {tuple(classes.shape)!r}"
        )
    return check_probability(iou_threshold, "iou_threshold", inclusive_high=True)


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression done separately per class, in one pass over all boxes.

    Boxes are visited from the highest score down (ties in input order); a box is dropped when
    its IoU with an already kept box of the same class is ``> iou_threshold``. Classes are kept
    apart by the coordinate-offset trick: every box is shifted by ``class * span`` (``span`` =
    the coordinate range + 1), so boxes of different classes never overlap and a single IoU
    matrix serves every class. The shift is exact for integer-valued coordinates; in float32
    with a large ``class * span`` it moves boxes by up to about ``class * span * 6e-8`` pixels,
    so pass float64 boxes where that matters. The loop over sorted boxes is K small tensor ops
    with no host synchronisation; cap K (e.g. top-1000 by score) before calling it.

    Args:
        boxes: xyxy boxes in pixels.
        scores: one score per box (higher is better).
        classes: integer class per box.
        iou_threshold: overlap in [0, 1] above which the lower-scored box is suppressed.

    Shape:
        boxes ``(K, 4)``, scores ``(K,)``, classes ``(K,)`` -> kept ``(K',)`` int64 indices into
        the inputs, ``K' <= K``, in descending score order.

    Raises:
        TypeError: an input is not a tensor, or ``iou_threshold`` is not a number.
        ValueError: shapes do not match, or ``iou_threshold`` is outside [0, 1].

    Example:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 10, 10], [0.0, 0, 10, 10]])
        >>> batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), 0.5)
        tensor([0, 2])
    """
    threshold = _check_inputs(boxes, scores, classes, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    shifted = boxes + (classes.to(boxes.dtype) * span)[:, None]  # (K, 4)
    order = torch.sort(scores, descending=True, stable=True).indices  # (K,)
    iou = box_iou(shifted[order], shifted[order]).triu(diagonal=1)  # (K, K): [i, j] only for j > i
    overlaps = iou > threshold  # (K, K)
    if boxes.device.type == "cpu":
        # On the CPU the same loop over a NumPy view skips the suppressed rows: 3x faster than
        # K torch ops for the 20-100 boxes of a detector's top-D (bench/inference.py, NMS).
        rows = overlaps.numpy()
        kept = np.ones(order.shape[0], dtype=bool)
        for i in range(order.shape[0]):
            if kept[i]:
                kept[i + 1:] &= ~rows[i, i + 1:]
        return order[torch.from_numpy(kept)]
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    # Row i suppresses its later overlaps only if box i itself survived; no host sync per row.
    for i in range(order.shape[0]):
        keep &= ~(overlaps[i] & keep[i])
    return order[keep]


def kept_detections(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, *,
                    nms: bool = True) -> list[dict[str, Tensor]]:
    """A detector's padded top-D decode -> per-image detections: zero scores dropped, then
    (optionally) class-aware NMS.

    Shape:
        boxes (N, D, 4), scores (N, D), labels (N, D) -> N dicts of boxes (M, 4), scores (M,),
        labels (M,), highest score first after NMS.
    """
    results = []
    for b, s, lab in zip(boxes, scores, labels):
        keep = s > 0
        b, s, lab = b[keep], s[keep], lab[keep]
        if nms and len(s):
            order = batched_nms(b, s, lab, iou_threshold)
            b, s, lab = b[order], s[order], lab[order]
        results.append({"boxes": b, "scores": s, "labels": lab})
    return results


def nms_reference(boxes, scores, classes, iou_threshold: float) -> list[int]:
    """Plain-Python greedy class-aware NMS, written for clarity; the tests compare against it.

    Same rule as :func:`batched_nms`: visit boxes by descending score (ties in input order),
    keep a box unless a kept box of the same class overlaps it with IoU ``> iou_threshold``.

    Args:
        boxes: sequence of ``(x_min, y_min, x_max, y_max)`` (a (K, 4) tensor works too).
        scores: K scores.
        classes: K integer classes.
        iou_threshold: overlap in [0, 1].

    Shape:
        K boxes -> list of K' kept indices in descending score order.

    Raises:
        ValueError: ``iou_threshold`` is outside [0, 1].

    Example:
        >>> nms_reference([[0, 0, 10, 10], [1, 1, 10, 10]], [0.9, 0.8], [0, 0], 0.5)
        [0]
    """
    threshold = check_probability(iou_threshold, "iou_threshold", inclusive_high=True)
    boxes = boxes.tolist() if isinstance(boxes, Tensor) else boxes
    boxes = [[float(v) for v in box] for box in boxes]
    scores = scores.tolist() if isinstance(scores, Tensor) else list(scores)
    classes = classes.tolist() if isinstance(classes, Tensor) else list(classes)

    def iou(a, b) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
        area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
        union = area_a + area_b - inter
        return inter / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda j: -scores[j]):
        if all(classes[k] != classes[i] or iou(boxes[k], boxes[i]) <= threshold for k in kept):
            kept.append(i)
    return kept
