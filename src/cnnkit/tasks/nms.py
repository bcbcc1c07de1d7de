"""Class-aware non-maximum suppression: a vectorised torch version for one image's boxes
(:func:`batched_nms`), one for a detector's padded top-D of a whole batch (:func:`padded_nms`,
what prediction and evaluation run) and a plain-Python reference.

torchvision's ``batched_nms`` is not available to us (torchvision does not work in this
environment and cnnkit does not depend on it), so this module is our own implementation; the
tests check both against :func:`nms_reference` on random boxes.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from cnnkit._checks import check_probability
from cnnkit.tasks.boxes import _iou, box_iou

__all__ = ["batched_nms", "nms_reference", "padded_nms"]

# Switch: False runs padded_nms in torch ops on the CPU too (the GPU's path; the same answer).
NUMPY_ON_CPU = True


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


def padded_nms(boxes: Tensor, scores: Tensor, labels: Tensor,
               iou_threshold: float) -> tuple[Tensor, Tensor]:
    """Class-aware greedy NMS of a whole batch of a detector's padded top-D at once.

    The same rule as :func:`batched_nms` applied to each image's boxes with a score ``> 0``
    (the padding of a top-D decode has score 0): visit them from the highest score down (ties
    in input order) and drop a box whose IoU with a kept box of the same label is
    ``> iou_threshold``. Labels are compared directly (no coordinate offset), and the greedy
    loop runs once over the D ranks for every image together, so a batch costs D small steps
    instead of one :func:`batched_nms` call per image (bench/inference.py, NMS columns, the
    CenterNet's D = 20: 0.010 ms per image in a batch of 32 against 0.21 ms image by image).
    CPU tensors are computed in NumPy (one image: 0.12 ms against 0.39 in torch ops), other
    devices, bf16 and integer scores in torch ops with no host synchronisation
    (``NUMPY_ON_CPU = False``: torch ops on the CPU too).
    Both give the same answer (tests/tasks/test_nms.py).

    Args:
        boxes: xyxy boxes in pixels.
        scores: one score per box; ``<= 0`` marks padding.
        labels: integer class per box.
        iou_threshold: overlap in [0, 1] above which the lower-scored box is suppressed.

    Shape:
        boxes (N, D, 4), scores (N, D), labels (N, D) -> order (N, D) int64, kept (N, D) bool:
        ``order[i]`` sorts image i's detections by descending score and ``kept[i, r]`` says
        whether its rank-``r`` detection (``order[i, r]``) survives, so ``order[i][kept[i]]``
        lists image i's surviving detections, best first.

    Raises:
        TypeError: an input is not a tensor.
        ValueError: shapes that do not match, or ``iou_threshold`` outside [0, 1].

    Example:
        >>> boxes = torch.tensor([[[0.0, 0, 10, 10], [1.0, 1, 10, 10], [0.0, 0, 10, 10]]])
        >>> order, kept = padded_nms(boxes, torch.tensor([[0.9, 0.8, 0.7]]),
        ...                          torch.tensor([[0, 0, 1]]), 0.5)
        >>> order[0][kept[0]]
        tensor([0, 2])
    """
    for name, value in (("boxes", boxes), ("scores", scores), ("labels", labels)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, D, 4), got {tuple(boxes.shape)!r}")
    n, d = boxes.shape[:2]
    for name, value in (("scores", scores), ("labels", labels)):
        if tuple(value.shape) != (n, d):
            raise ValueError(f"{name} must have shape ({n}, {d}) to match boxes, got "
                             f"{tuple(value.shape)!r}")
    threshold = check_probability(iou_threshold, "iou_threshold", inclusive_high=True)
    if _on_host(boxes, scores, labels):
        order, kept = _padded_nms_numpy(boxes.detach().numpy(), scores.detach().numpy(),
                                        labels.detach().numpy(), threshold)
        return torch.from_numpy(order), torch.from_numpy(kept)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # (N, D)
    boxes = boxes.gather(1, order[:, :, None].expand(n, d, 4))  # (N, D, 4) by rank
    labels = labels.gather(1, order)  # (N, D)
    kept = scores.gather(1, order) > 0  # (N, D): padding is never kept
    # overlaps[i, r, q]: rank r would suppress rank q if q > r (same label, IoU > threshold)
    overlaps = (_iou(boxes, boxes) > threshold) & (labels[:, :, None] == labels[:, None, :])
    # Row r suppresses its later overlaps only if rank r itself survived; no host sync (GPU).
    for r in range(d - 1):
        kept[:, r + 1:] &= ~(overlaps[:, r, r + 1:] & kept[:, r, None])
    return order, kept


def _on_host(boxes: Tensor, scores: Tensor, labels: Tensor) -> bool:
    """Whether :func:`padded_nms` runs in NumPy: CPU tensors of dtypes NumPy has (not bf16),
    floating scores (negated to sort them descending). NumPy's calls cost less than torch's
    small ops up to batch 32; at 256 the two are within 0.002 ms per image (bench/inference.py,
    NMS columns)."""
    return NUMPY_ON_CPU and scores.is_floating_point() and all(
        t.device.type == "cpu" and t.dtype != torch.bfloat16 for t in (boxes, scores, labels))


def _padded_nms_numpy(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                      threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`padded_nms` on NumPy arrays: the same sort, IoU (``boxes._iou``) and greedy rule.

    The greedy pass visits only the ranks that overlap a later one in some image (a few µs
    each): detections that overlap nothing cost nothing, and fewer than two real detections
    per image need no IoU at all. Rows are picked by fancy indexing with a cached row index
    and the upper triangle by a cached mask: ``take_along_axis`` and ``triu`` build their
    index arrays on every call (one image of 20 boxes: 56 -> 30 µs, 2-core AMD EPYC).

    Shape:
        boxes (N, D, 4), scores (N, D), labels (N, D) -> order (N, D) int64, kept (N, D) bool.
    """
    image = _row_index(len(scores))  # (N, 1): each row's image
    # stable: ties in input order, as torch.sort(stable=True); -0.0 == 0.0 keeps them tied
    order = np.argsort(-scores, axis=1, kind="stable")  # (N, D)
    kept = scores[image, order] > 0  # (N, D): padding is never kept
    # Sorted, every image's real detections come first: ranks past the longest run of them are
    # padding everywhere and need no IoU (a weak detector's top-100 may hold 3 real boxes).
    r_max = int(kept.sum(axis=1).max(initial=0))
    if r_max > 1:
        ranked = order[:, :r_max]  # (N, R)
        boxes = boxes[image, ranked]  # (N, R, 4) by rank
        labels = labels[image, ranked]  # (N, R)
        # rows[i, r, q]: rank r would suppress rank q > r (same label, IoU > threshold)
        rows = ((_iou(boxes, boxes) > threshold) & (labels[:, :, None] == labels[:, None, :])
                & _above_diagonal(r_max))  # (N, R, R)
        for r in np.flatnonzero(rows.any(axis=(0, 2))):
            kept[:, r + 1:r_max] &= ~(rows[:, r, r + 1:] & kept[:, r, None])
    return order.astype(np.int64, copy=False), kept


@functools.lru_cache(maxsize=16)
def _row_index(n: int) -> np.ndarray:
    """``(n, 1)`` row numbers, read-only: ``a[_row_index(n), order]`` gathers along axis 1."""
    index = np.arange(n)[:, None]
    index.flags.writeable = False
    return index


@functools.lru_cache(maxsize=16)
def _above_diagonal(r: int) -> np.ndarray:
    """``(r, r)`` bool, True above the diagonal (``np.triu(ones, 1)``), read-only."""
    mask = np.triu(np.ones((r, r), dtype=bool), 1)
    mask.flags.writeable = False
    return mask


def kept_detections(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, *,
                    nms: bool = True) -> list[dict[str, Tensor]]:
    """A detector's padded top-D decode -> per-image detections: zero scores dropped, then
    (optionally) class-aware NMS (:func:`padded_nms`, the whole batch at once).

    Shape:
        boxes (N, D, 4), scores (N, D), labels (N, D) -> N dicts of boxes (M, 4), scores (M,),
        labels (M,): highest score first after NMS, in the input order without it.
    """
    if not nms:
        keep = scores > 0
        return [{"boxes": b[k], "scores": s[k], "labels": lab[k]}
                for b, s, lab, k in zip(boxes, scores, labels, keep)]
    order, kept = padded_nms(boxes, scores, labels, iou_threshold)
    results = []
    for b, s, lab, o, k in zip(boxes, scores, labels, order, kept):
        index = o[k]  # (M,) image i's surviving detections, best first
        results.append({"boxes": b[index], "scores": s[index], "labels": lab[index]})
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
