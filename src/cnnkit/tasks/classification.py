"""Classification metrics: accuracy, top-k accuracy, confusion matrix, precision/recall/F1.

Metrics accumulate on the device (no ``.item()`` per batch); ``compute()`` syncs once.
Definitions (C = confusion matrix, rows = true class, columns = predicted class):
precision_k = C[k,k] / Σ_i C[i,k], recall_k = C[k,k] / Σ_j C[k,j],
F1_k = 2·precision·recall / (precision + recall); 0 where a denominator is 0 (like scikit-learn's
``zero_division=0``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def hard_labels(target: torch.Tensor) -> torch.Tensor:
    """Class indices from (N,) labels or (N, K) one-hot/soft labels (argmax)."""
    return target.argmax(dim=1) if target.ndim == 2 else target


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of rows whose arg-max output is the target class.

    Shape:
        output (N, K); target (N,) or (N, K).

    Example:
        >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
        0.5
    """
    return (output.argmax(dim=1) == hard_labels(target)).float().mean().item()


def top_k_correct(output: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Number of rows whose target is among the ``k`` largest outputs (a 0-d tensor, no sync)."""
    if not 1 <= k:
        raise ValueError(f"k must be >= 1, got {k!r}")
    k = min(k, output.shape[1])
    top = output.topk(k, dim=1).indices  # (N, k)
    return (top == hard_labels(target).unsqueeze(1)).any(dim=1).sum()


def top_k_accuracy(output: torch.Tensor, target: torch.Tensor, k: int = 5) -> float:
    """Fraction of rows whose target is among the ``k`` highest-scoring classes."""
    return top_k_correct(output, target, k).item() / max(1, output.shape[0])


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts C[true, predicted] as an int64 (K, K) tensor.

    Shape:
        pred (N,), target (N,) class indices; result (K, K).

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        tensor([[1, 1],
                [0, 1]])
    """
    idx = target.long() * num_classes + pred.long()  # (N,) flat index into the (K, K) matrix
    counts = torch.bincount(idx, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)  # (K*K,) -> (K, K)


@dataclass(frozen=True)
class ClassReport:
    """Per-class precision, recall, F1 and support, computed from a confusion matrix."""

    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]

    @classmethod
    def from_confusion(cls, cm: torch.Tensor) -> ClassReport:
        cm = cm.double()
        tp = cm.diag()
        predicted = cm.sum(dim=0)
        actual = cm.sum(dim=1)
        precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), 0.0)
        recall = torch.where(actual > 0, tp / actual.clamp_min(1), 0.0)
        denom = precision + recall
        f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12), 0.0)
        return cls(precision.tolist(), recall.tolist(), f1.tolist(),
                   [int(v) for v in actual.tolist()])

    def to_table(self, class_names: list[str]) -> str:
        """A text table: one row per class, then the macro average."""
        width = max([5, *(len(n) for n in class_names)])
        lines = [f"{'class':<{width}}  precision  recall     f1  support"]
        for name, p, r, f, s in zip(class_names, self.precision, self.recall, self.f1,
                                    self.support):
            lines.append(f"{name:<{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {s:7d}")
        n = max(1, len(self.f1))
        lines.append(f"{'macro':<{width}}  {sum(self.precision) / n:9.3f}  "
                     f"{sum(self.recall) / n:6.3f}  {sum(self.f1) / n:5.3f}  "
                     f"{sum(self.support):7d}")
        return "\n".join(lines)


def format_confusion(cm: torch.Tensor, class_names: list[str]) -> str:
    """The confusion matrix as aligned text: rows = true class, columns = predicted class."""
    names = [str(n) for n in class_names]
    width = max([4, *(len(n) for n in names), len(str(int(cm.max().item()) if cm.numel() else 0))])
    header = " " * width + "  " + " ".join(f"{n:>{width}}" for n in names)
    rows = [f"{name:>{width}}  " + " ".join(f"{int(v):>{width}}" for v in row)
            for name, row in zip(names, cm.tolist())]
    return "true \\ predicted\n" + "\n".join([header, *rows])


class MetricAccumulator:
    """Running sums of loss, correct predictions and (optionally) the confusion matrix.

    Everything stays on the device; :meth:`compute` performs the single host sync.

    Args:
        confusion: also count the confusion matrix (K read from the output's width).
        top_k: also count top-k hits.

    Example:
        >>> acc = MetricAccumulator(confusion=True)
        >>> acc.update(torch.tensor(0.5), torch.tensor([[2., 1.]]), torch.tensor([0]))
        >>> acc.compute()["accuracy"]
        1.0
    """

    def __init__(self, confusion: bool = False, top_k: int | None = None):
        self.confusion_enabled = confusion
        self.top_k = top_k
        self.loss_sum: torch.Tensor | None = None
        self.correct: torch.Tensor | None = None
        self.top_k_hits: torch.Tensor | None = None
        self.cm: torch.Tensor | None = None
        self.count = 0

    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: ``loss`` is the batch mean, ``output`` (N, K), ``target`` (N,)/(N, K)."""
        n = output.shape[0]
        labels = hard_labels(target)
        pred = output.argmax(dim=1)
        batch_loss = loss.detach().float() * n
        batch_correct = (pred == labels).sum()
        self.loss_sum = batch_loss if self.loss_sum is None else self.loss_sum + batch_loss
        self.correct = batch_correct if self.correct is None else self.correct + batch_correct
        if self.top_k:
            hits = top_k_correct(output, labels, self.top_k)
            self.top_k_hits = hits if self.top_k_hits is None else self.top_k_hits + hits
        if self.confusion_enabled:
            cm = confusion_matrix(pred, labels, output.shape[1])
            self.cm = cm if self.cm is None else self.cm + cm
        self.count += n

    def running_loss(self) -> torch.Tensor | None:
        """The mean loss so far as a 0-d device tensor (no sync), or None before any batch."""
        return None if self.loss_sum is None else self.loss_sum / max(1, self.count)

    def compute(self) -> dict[str, float]:
        """``{"loss", "accuracy"[, "top{k}_accuracy"]}`` averaged over every image seen."""
        if not self.count:
            return {"loss": float("nan"), "accuracy": float("nan")}
        out = {"loss": self.loss_sum.item() / self.count,
               "accuracy": self.correct.item() / self.count}
        if self.top_k_hits is not None:
            out[f"top{self.top_k}_accuracy"] = self.top_k_hits.item() / self.count
        return out

    def confusion(self) -> torch.Tensor:
        """The accumulated (K, K) confusion matrix on the CPU."""
        if self.cm is None:
            raise ValueError("no confusion matrix: create the accumulator with confusion=True and "
                             "update it with at least one batch")
        return self.cm.cpu()
