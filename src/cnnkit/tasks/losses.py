"""Losses for boxes and masks: GIoU, Dice and the RetinaNet focal loss.

Smooth-L1 and cross-entropy come from ``torch.nn.functional`` and are not repeated here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnkit.tasks.boxes import elementwise_generalized_box_iou

__all__ = ["giou_loss", "dice_loss", "sigmoid_focal_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS!r}, got {reduction!r}")
    return reduction


def giou_loss(pred_boxes: Tensor, target_boxes: Tensor, reduction: str = "mean") -> Tensor:
    """Generalized-IoU loss ``1 - GIoU(pred, target)`` of matching box pairs, in [0, 2).

    Args:
        pred_boxes: predicted xyxy boxes.
        target_boxes: true xyxy boxes, same shape.
        reduction: ``"mean"`` (of an empty set: 0), ``"sum"`` or ``"none"``.

    Shape:
        pred_boxes, target_boxes ``(..., 4)`` -> scalar, or ``(...)`` with ``"none"``.

    Raises:
        ValueError: the shapes differ, or an unknown ``reduction``.

    Example:
        >>> giou_loss(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 2, 2]]))
        tensor(0.)
    """
    _check_reduction(reduction)
    return _reduce(1.0 - elementwise_generalized_box_iou(pred_boxes, target_boxes), reduction)


def dice_loss(
    logits: Tensor, masks: Tensor, ignore_index: int = 255, smooth: float = 1.0
) -> Tensor:
    """Soft multi-class Dice loss: ``1 - mean_k (2 |P_k ∩ T_k| + s) / (|P_k| + |T_k| + s)``.

    ``P_k`` is the softmax probability of class ``k`` and ``T_k`` the one-hot truth, summed over
    every valid pixel of the batch; pixels equal to ``ignore_index`` count nowhere (and get no
    gradient). The smoothing ``s`` makes a class absent from both truth and prediction score 1,
    so a perfect prediction gives a loss near 0.

    Args:
        logits: raw class scores.
        masks: class index per pixel (int64), ``ignore_index`` for pixels not scored.
        ignore_index: the mask value of ignored pixels.
        smooth: the smoothing ``s`` (> 0).

    Shape:
        logits ``(N, K, H, W)``, masks ``(N, H, W)`` -> scalar.

    Raises:
        TypeError: ``masks`` is not an integer tensor.
        ValueError: shapes do not match, or a mask value is neither in [0, K) nor ``ignore_index``.

    Example:
        >>> dice_loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]))
        tensor(0.3333)
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (N, K, H, W), got {tuple(logits.shape)!r}")
    n, k, h, w = logits.shape
    if masks.shape != (n, h, w):
        raise ValueError(
            f"masks must have shape (N, H, W) = {(n, h, w)!r} to match logits, "
            f"got {tuple(masks.shape)!r}"
        )
    if masks.dtype.is_floating_point or masks.dtype == torch.bool:
        raise TypeError(
            f"masks must be an integer tensor of class indices, got dtype {masks.dtype}"
        )
    valid = masks != ignore_index  # (N, H, W)
    bad = valid & ((masks < 0) | (masks >= k))
    if bad.any():
        raise ValueError(
            f"masks holds class index {int(masks[bad][0])!r}, outside [0, {k}) for {k} logit "
            f"channels (and not ignore_index={ignore_index!r})"
        )
    probs = logits.softmax(dim=1) * valid[:, None]  # (N, K, H, W), ignored pixels zeroed
    target = F.one_hot(torch.where(valid, masks, 0).long(), k)  # (N, H, W, K)
    target = target.permute(0, 3, 1, 2)  # (N, H, W, K) -> (N, K, H, W)
    target = target.to(probs.dtype) * valid[:, None]
    inter = (probs * target).sum(dim=(0, 2, 3))  # (K,)
    total = probs.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))  # (K,)
    dice = (2 * inter + smooth) / (total + smooth)
    return 1.0 - dice.mean()


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> Tensor:
    """Focal loss of RetinaNet (Lin et al., 2017) on independent sigmoid outputs.

    ``FL = -alpha_t (1 - p_t)^gamma log(p_t)`` with ``p = sigmoid(logits)``,
    ``p_t = p`` where the target is 1 and ``1 - p`` where it is 0, and
    ``alpha_t = alpha`` / ``1 - alpha`` likewise. ``gamma = 0, alpha = None`` is plain binary
    cross-entropy. RetinaNet sums the loss and divides by the number of positive anchors, hence
    the ``"sum"`` default.

    Args:
        logits: raw scores.
        targets: 0/1 (or soft) targets, same shape as ``logits``.
        alpha: weight of the positives in [0, 1], or None for no weighting.
        gamma: focusing exponent >= 0.
        reduction: ``"sum"``, ``"mean"`` or ``"none"``.

    Shape:
        logits, targets ``(*)`` -> scalar, or ``(*)`` with ``"none"``.

    Raises:
        ValueError: shapes differ, ``alpha`` outside [0, 1], ``gamma < 0``, or an unknown
            ``reduction``.

    Example:
        >>> sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]))  # 0.25 * 0.5**2 * ln 2
        tensor(0.0433)
    """
    _check_reduction(reduction)
    if logits.shape != targets.shape:
        raise ValueError(
            f"targets must have the shape of logits {tuple(logits.shape)!r}, "
            f"got {tuple(targets.shape)!r}"
        )
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None, got {alpha!r}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return _reduce(loss, reduction)
