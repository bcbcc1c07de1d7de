"""Accumulating metrics for localisation and segmentation, mergeable across processes.

Each metric keeps its counts in one tensor: ``state()`` returns it, ``load_state(t)`` puts one
back and ``merge(other)`` adds another's. With ``torch.distributed`` the usual pattern is::

    t = metric.state(); dist.all_reduce(t); metric.load_state(t); metric.compute()

because every entry is a sum over samples.
"""
from __future__ import annotations

import torch
from torch import Tensor

from cnnkit._checks import check_positive_int
from cnnkit.tasks.boxes import box_iou

__all__ = ["LocalizationMetrics", "SegmentationMetrics"]


def _check_state(t, like: Tensor, owner: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{owner}.load_state(t): t must be a torch.Tensor, got {type(t).__name__}")
    if t.shape != like.shape:
        raise ValueError(
            f"{owner}.load_state(t): t must have shape {tuple(like.shape)!r} (from state()), "
            f"got {tuple(t.shape)!r}"
        )
    return t.detach().to(device="cpu", dtype=like.dtype).clone()


class LocalizationMetrics:
    """Class accuracy and box IoU of a one-object-per-image localiser.

    ``compute()`` returns ``accuracy`` (share of images whose label is right), ``mean_iou``
    (mean IoU of the predicted box with the true one, whatever the label) and ``iou50`` (share
    of images with that IoU >= 0.5).

    Shape:
        ``update(pred_labels (N,), pred_boxes (N, 4), labels (N,), boxes (N, 4))``, boxes xyxy
        pixels. ``state()`` is a float64 ``(4,)`` tensor:
        ``[images, correct, sum IoU, IoU >= 0.5]``.

    Example:
        >>> m = LocalizationMetrics()
        >>> m.update(torch.tensor([1]), torch.tensor([[0.0, 0, 2, 2]]),
        ...          torch.tensor([1]), torch.tensor([[0.0, 0, 2, 4]]))
        >>> m.compute()
        {'accuracy': 1.0, 'mean_iou': 0.5, 'iou50': 1.0}
    """

    def __init__(self) -> None:
        self._state = torch.zeros(4, dtype=torch.float64)

    def update(
        self, pred_labels: Tensor, pred_boxes: Tensor, labels: Tensor, boxes: Tensor
    ) -> None:
        """Add a batch of predictions and truths (see the class docstring for shapes).

        Raises:
            ValueError: the four tensors do not agree on N, or a box tensor is not (N, 4).
        """
        if labels.ndim != 1:
            raise ValueError(f"labels must have shape (N,), got {tuple(labels.shape)!r}")
        n = labels.shape[0]
        for name, value, shape in (
            ("pred_labels", pred_labels, (n,)),
            ("pred_boxes", pred_boxes, (n, 4)),
            ("labels", labels, (n,)),
            ("boxes", boxes, (n, 4)),
        ):
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{name} must have shape {shape!r} (N from labels), got {tuple(value.shape)!r}"
                )
        pred_boxes, boxes = pred_boxes.detach().double().cpu(), boxes.detach().double().cpu()
        iou = box_iou(pred_boxes, boxes).diagonal()  # (N, N) -> (N,): each box with its own truth
        correct = (pred_labels.detach().cpu() == labels.detach().cpu()).sum()
        self._state += torch.stack(
            [
                torch.tensor(float(n), dtype=torch.float64),
                correct.double(),
                iou.sum(),
                (iou >= 0.5).sum().double(),
            ]
        )

    def compute(self) -> dict[str, float]:
        """Return ``{"accuracy", "mean_iou", "iou50"}`` over everything seen.

        Raises:
            ValueError: no image was added yet.
        """
        n, correct, iou_sum, hits = self._state.tolist()
        if n == 0:
            raise ValueError("LocalizationMetrics.compute(): no images yet; call update(...) first")
        return {"accuracy": correct / n, "mean_iou": iou_sum / n, "iou50": hits / n}

    def state(self) -> Tensor:
        """A copy of the counts, float64 ``(4,)``: summing states of several processes is valid."""
        return self._state.clone()

    def load_state(self, t: Tensor) -> None:
        """Replace the counts with ``t`` (e.g. the all-reduced sum of every process' state())."""
        self._state = _check_state(t, self._state, "LocalizationMetrics")

    def merge(self, other: LocalizationMetrics) -> None:
        """Add the counts of ``other`` to this one."""
        self._state += other.state()

    def reset(self) -> None:
        """Forget everything seen."""
        self._state.zero_()


class SegmentationMetrics:
    """Per-class IoU, mean IoU and pixel accuracy from a confusion matrix.

    ``confusion[t, p]`` counts pixels of true class ``t`` predicted as ``p``; pixels whose truth
    is ``ignore_index`` are not counted. Per class, ``IoU_k = TP / (TP + FP + FN)``.

    ``compute()`` returns:

    - ``per_class_iou``: list of K values; ``None`` for a class absent from both truth and
      prediction (its IoU is 0/0, undefined).
    - ``miou``: the mean of ``per_class_iou`` over the classes present in the truth *or* the
      prediction (the ``None`` entries are left out), so classes a dataset never shows do not
      drag the mean down, and predicting a class that is not there still costs.
    - ``pixel_accuracy``: correct pixels / counted pixels.

    Args:
        num_classes: K, the number of classes (background included).
        ignore_index: the mask value of pixels that are not scored.

    Shape:
        ``update(pred (N, H, W) class indices or logits (N, K, H, W), masks (N, H, W))``.
        ``state()`` is the int64 ``(K, K)`` confusion matrix.

    Raises:
        ValueError / TypeError: ``num_classes`` is not a positive int.

    Example:
        >>> m = SegmentationMetrics(2)
        >>> m.update(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 0], [1, 1]]]))
        >>> out = m.compute()
        >>> round(out["miou"], 4), out["pixel_accuracy"], out["per_class_iou"][0]
        (0.5833, 0.75, 0.5)
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.ignore_index = ignore_index
        self._confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, masks: Tensor) -> None:
        """Add a batch: ``pred`` class indices ``(N, H, W)`` or logits ``(N, K, H, W)`` (argmax).

        Raises:
            ValueError: shapes do not match, or a class index is outside [0, K).
        """
        k = self.num_classes
        if pred.ndim == 4:
            if pred.shape[1] != k:
                raise ValueError(
                    f"pred logits must have {k} channels (num_classes), "
                    f"got shape {tuple(pred.shape)!r}"
                )
            pred = pred.argmax(dim=1)  # (N, K, H, W) -> (N, H, W)
        if pred.shape != masks.shape or masks.ndim != 3:
            raise ValueError(
                f"pred must have the shape of masks (N, H, W), got pred {tuple(pred.shape)!r} "
                f"and masks {tuple(masks.shape)!r}"
            )
        # Counted on the inputs' device; only the (K, K) counts come back to the CPU.
        pred = pred.detach().long()
        masks = masks.detach().to(pred.device).long()
        valid = masks != self.ignore_index  # (N, H, W)
        truth, guess = masks[valid], pred[valid]  # (P,), (P,)
        for name, values in (("masks", truth), ("pred", guess)):
            bad = (values < 0) | (values >= k)
            if bad.any():
                raise ValueError(
                    f"{name} holds class index {int(values[bad][0])!r}, outside [0, {k}) for "
                    f"num_classes={k} (and not ignore_index={self.ignore_index!r})"
                )
        counts = torch.bincount(truth * k + guess, minlength=k * k)  # (K*K,)
        self._confusion += counts.reshape(k, k).cpu()  # (K*K,) -> (K, K)

    def compute(self) -> dict:
        """Return ``{"miou", "pixel_accuracy", "per_class_iou"}`` (see the class docstring).

        Raises:
            ValueError: no pixel was counted yet.
        """
        confusion = self._confusion.double()
        total = confusion.sum().item()
        if total == 0:
            raise ValueError("SegmentationMetrics.compute(): no pixels yet; call update(...) first")
        tp = confusion.diagonal()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - tp  # (K,): TP + FP + FN
        per_class = [(t / u) if u > 0 else None for t, u in zip(tp.tolist(), union.tolist())]
        present = [v for v in per_class if v is not None]
        return {
            "miou": sum(present) / len(present),
            "pixel_accuracy": tp.sum().item() / total,
            "per_class_iou": per_class,
        }

    def state(self) -> Tensor:
        """A copy of the int64 ``(K, K)`` confusion matrix: summing over processes is valid."""
        return self._confusion.clone()

    def load_state(self, t: Tensor) -> None:
        """Replace the confusion matrix with ``t`` (e.g. the all-reduced sum of every state())."""
        self._confusion = _check_state(t, self._confusion, "SegmentationMetrics")

    def merge(self, other: SegmentationMetrics) -> None:
        """Add the counts of ``other`` (same ``num_classes``) to this one."""
        self._confusion += other.state()

    def reset(self) -> None:
        """Forget everything seen."""
        self._confusion.zero_()
