"""Loss functions by name: cross-entropy, the tutorials' squared error, binary cross-entropy.

Every loss takes the model output (N, K) and targets that are either class indices (N,) int64 or
one-hot / soft labels (N, K) float, so mixup/cutmix and Keras' one-hot labels work unchanged.
``from_probs=True`` says the model already ends in a softmax (Keras' ``Dense(10,
activation='softmax')``): the loss then works on ``log(output)`` instead of applying a second
softmax.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.train.config import LOSS_ALIASES

_EPS = 1e-7  # Keras' epsilon: keeps log(p) finite when a softmax output underflows to 0


def _log_probs(output: torch.Tensor, from_probs: bool) -> torch.Tensor:
    if from_probs:
        return torch.log(output.clamp_min(_EPS))
    return F.log_softmax(output, dim=1)


def _probs(output: torch.Tensor, from_probs: bool) -> torch.Tensor:
    return output if from_probs else F.softmax(output, dim=1)


def _one_hot(target: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    if target.ndim == 1:
        return F.one_hot(target.long(), num_classes).to(dtype)  # (N,) -> (N, K)
    return target.to(dtype)


class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy −Σ_k t_k log p_k, with label smoothing and class weights.

    With integer targets and logits this equals ``torch.nn.functional.cross_entropy`` (same
    ``weight`` normalisation: the weighted mean divides by the summed weights of the targets).

    Args:
        label_smoothing: ε in [0, 1): the target becomes (1 − ε)·onehot + ε/K.
        class_weights: optional (K,) weights, e.g. inverse class frequencies.
        from_probs: the output is already a probability vector (model ends in softmax).

    Shape:
        output (N, K); target (N,) int64 or (N, K) float; result a scalar.

    Example:
        >>> CrossEntropyLoss()(torch.zeros(2, 4), torch.tensor([0, 3]))
        tensor(1.3863)
    """

    def __init__(self, label_smoothing: float = 0.0, class_weights: Sequence[float] | None = None,
                 from_probs: bool = False):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.from_probs = from_probs
        weights = None if class_weights is None else torch.as_tensor(class_weights,
                                                                      dtype=torch.float32)
        if weights is not None and (weights.ndim != 1 or (weights < 0).any()):
            raise ValueError(f"class_weights must be a 1-D list of numbers >= 0, got "
                             f"{class_weights!r}")
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = output.shape[1]
        if self.class_weights is not None and self.class_weights.numel() != num_classes:
            raise ValueError(f"class_weights has {self.class_weights.numel()} values but the "
                             f"model outputs {num_classes} classes; give one weight per class")
        if not self.from_probs and target.ndim == 1:
            return F.cross_entropy(output.float(), target, weight=self.class_weights,
                                   label_smoothing=self.label_smoothing)
        log_p = _log_probs(output.float(), self.from_probs)
        t = _one_hot(target, num_classes, log_p.dtype)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        if self.class_weights is None:
            return -(t * log_p).sum(dim=1).mean()
        w = self.class_weights.to(log_p.device)
        # Matches torch: per-sample loss weighted by w[target], divided by Σ w[target].
        sample_w = (_one_hot(target, num_classes, log_p.dtype) * w).sum(dim=1)
        return -(t * log_p * w).sum() / sample_w.sum()


def _squared_errors(output: torch.Tensor, target: torch.Tensor, from_probs: bool) -> torch.Tensor:
    """(t_k − y_k)² per image and class on the softmax outputs: (N, K)."""
    p = _probs(output.float(), from_probs)
    return (_one_hot(target, p.shape[1], p.dtype) - p) ** 2


class SquaredErrorLoss(nn.Module):
    """The tutorials' squared error E = ½ Σ_k (t_k − y_k)² on softmax outputs, averaged over N.

    Args:
        from_probs: the output is already a probability vector (model ends in softmax).

    Shape:
        output (N, K); target (N,) int64 or (N, K) float; result a scalar.

    Example:
        >>> SquaredErrorLoss()(torch.zeros(1, 2), torch.tensor([0]))  # ½((1−½)² + (0−½)²)
        tensor(0.2500)
    """

    def __init__(self, from_probs: bool = False):
        super().__init__()
        self.from_probs = from_probs

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * _squared_errors(output, target, self.from_probs).sum(dim=1).mean()


class MeanSquaredErrorLoss(nn.Module):
    """Keras' ``mse``: the mean over N and the K classes of (t_k − y_k)² on softmax outputs.

    The same gradient direction as :class:`SquaredErrorLoss`, scaled by 2/K: Keras' listing
    with ``loss="mse"`` trains at Keras' step sizes only with this scale.

    Args:
        from_probs: the output is already a probability vector (model ends in softmax).

    Shape:
        output (N, K); target (N,) int64 or (N, K) float; result a scalar.

    Example:
        >>> MeanSquaredErrorLoss()(torch.zeros(1, 2), torch.tensor([0]))  # ((1−½)² + (0−½)²)/2
        tensor(0.2500)
    """

    def __init__(self, from_probs: bool = False):
        super().__init__()
        self.from_probs = from_probs

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _squared_errors(output, target, self.from_probs).mean()


class BinaryCrossEntropyLoss(nn.Module):
    """Binary cross-entropy per output unit (multi-label, or one sigmoid unit for two classes).

    Integer targets are turned into one-hot vectors, so a K-way head trains K one-vs-rest units.
    With one output unit, integer targets 0/1 are the label itself.

    Args:
        from_probs: the output is already a probability (model ends in a sigmoid).

    Shape:
        output (N, K); target (N,) int64 or (N, K) float; result a scalar.
    """

    def __init__(self, from_probs: bool = False):
        super().__init__()
        self.from_probs = from_probs

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = output.float()
        if output.shape[1] == 1 and target.ndim == 1:
            t = target.float().unsqueeze(1)  # (N,) -> (N, 1)
        else:
            t = _one_hot(target, output.shape[1], output.dtype)
        if self.from_probs:
            return F.binary_cross_entropy(output.clamp(_EPS, 1 - _EPS), t)
        return F.binary_cross_entropy_with_logits(output, t)


# Keras and tutorial names -> one of our losses (shared with TrainConfig and the CLI).
_ALIASES = LOSS_ALIASES


def get_loss(loss: str | Callable = "cross_entropy", *, label_smoothing: float = 0.0,
             class_weights: Sequence[float] | None = None,
             from_probs: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Resolve a loss name (ours, Keras' or a tutorial's) or pass a callable/torch loss through.

    Args:
        loss: ``"cross_entropy"`` (aliases ``categorical_crossentropy``,
            ``sparse_categorical_crossentropy``), ``"squared_error"`` (½Σ), ``"mse"`` (Keras' mean), ``"bce"``
            (``binary_crossentropy``), or any callable ``loss(output, target) -> scalar`` such as
            ``torch.nn.CrossEntropyLoss()``.
        label_smoothing: cross-entropy only.
        class_weights: cross-entropy only, one weight per class.
        from_probs: the model's output is already probabilities (ends in softmax / sigmoid).

    Raises:
        ValueError: an unknown name (the message suggests the closest one), or options that the
            chosen loss does not take.
        TypeError: neither a string nor a callable.

    Example:
        >>> get_loss("sparse_categorical_crossentropy")
        CrossEntropyLoss()
    """
    if callable(loss) and not isinstance(loss, str):
        return loss
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name like 'cross_entropy' or a callable, got {loss!r}")
    key = loss.strip().lower().replace("-", "_")
    if key not in _ALIASES:
        hint = difflib.get_close_matches(key, _ALIASES, n=1)
        fix = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown loss {loss!r}{fix} (valid: {', '.join(sorted(_ALIASES))}, "
                         "or pass a callable such as torch.nn.CrossEntropyLoss())")
    name = _ALIASES[key]
    if name == "cross_entropy":
        return CrossEntropyLoss(label_smoothing, class_weights, from_probs=from_probs)
    if label_smoothing or class_weights is not None:
        raise ValueError(f"label_smoothing and class_weights apply to cross-entropy only, not to "
                         f"loss={loss!r}; remove them or use loss='cross_entropy'")
    if name == "squared_error":
        return SquaredErrorLoss(from_probs=from_probs)
    if name == "mse":
        return MeanSquaredErrorLoss(from_probs=from_probs)
    return BinaryCrossEntropyLoss(from_probs=from_probs)
