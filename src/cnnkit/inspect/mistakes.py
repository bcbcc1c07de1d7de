"""Where a classifier goes wrong: confusion matrix, per-class accuracy, most confident mistakes."""
from __future__ import annotations

from typing import NamedTuple

import torch

from cnnkit._checks import check_positive_int


class Mistakes(NamedTuple):
    """The most confident wrong predictions, most confident first.

    Attributes:
        indices: (k,) positions in the evaluated set.
        predicted: (k,) the wrong class that was predicted.
        confidence: (k,) the probability given to that wrong class.
        true_prob: (k,) the probability given to the true class.
    """

    indices: torch.Tensor
    predicted: torch.Tensor
    confidence: torch.Tensor
    true_prob: torch.Tensor


def _labels(value, name: str, num_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(value).reshape(-1).long()  # any shape -> (N,)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must hold class indices in [0, {num_classes}), got values from "
                         f"{labels.min().item()!r} to {labels.max().item()!r}")
    return labels


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """Count how often class i (row, true) was predicted as class j (column).

    Args:
        y_true, y_pred: (N,) class indices.
        num_classes: K.

    Shape:
        (N,), (N,) -> (K, K) int64; row sums are the class sizes, the diagonal the hits.

    Raises:
        ValueError: lengths differ or an index is outside [0, K).

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
        [[1, 0], [1, 1]]
    """
    num_classes = check_positive_int(num_classes, "num_classes")
    true = _labels(y_true, "y_true", num_classes)
    pred = _labels(y_pred, "y_pred", num_classes)
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {true.numel()} and "
                         f"{pred.numel()}")
    counts = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)  # (K*K,) -> (K, K)


def normalize_confusion(cm) -> torch.Tensor:
    """Divide each row by its sum: row i is the distribution of predictions for true class i.

    Rows of classes without samples stay 0. Shape: (K, K) -> (K, K) float.
    """
    cm = torch.as_tensor(cm, dtype=torch.float64)
    totals = cm.sum(dim=1, keepdim=True)
    return torch.where(totals > 0, cm / totals.clamp(min=1), torch.zeros_like(cm))


def per_class_accuracy(cm) -> torch.Tensor:
    """Fraction of each true class predicted correctly (recall): diagonal / row sum.

    Shape:
        (K, K) -> (K,) float; NaN for a class with no samples.

    Example:
        >>> per_class_accuracy([[3, 1], [0, 2]]).tolist()
        [0.75, 1.0]
    """
    cm = torch.as_tensor(cm, dtype=torch.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square (K, K) confusion matrix, got shape {tuple(cm.shape)}")
    return cm.diagonal() / cm.sum(dim=1)


def most_confident_mistakes(probs, y_true, k: int = 16) -> Mistakes:
    """The ``k`` wrong predictions the model was most sure about.

    Args:
        probs: (N, K) class probabilities (softmax output).
        y_true: (N,) true class indices.
        k: how many to return (fewer if there are fewer mistakes).

    Shape:
        (N, K), (N,) -> four (min(k, mistakes),) tensors.

    Raises:
        ValueError: ``probs`` is not 2-D or its length differs from ``y_true``.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> most_confident_mistakes(probs, [1, 1, 1], k=5).indices.tolist()
        [0, 2]
    """
    k = check_positive_int(k, "k")
    probs = torch.as_tensor(probs, dtype=torch.float32)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, K) probabilities, got shape {tuple(probs.shape)}")
    true = _labels(y_true, "y_true", probs.shape[1])
    if true.numel() != probs.shape[0]:
        raise ValueError(f"probs has {probs.shape[0]} rows but y_true has {true.numel()} labels")
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != true).nonzero().reshape(-1)  # (M, 1) -> (M,)
    order = confidence[wrong].argsort(descending=True, stable=True)[:k]
    indices = wrong[order]
    return Mistakes(indices, predicted[indices], confidence[indices],
                    probs[indices, true[indices]])
