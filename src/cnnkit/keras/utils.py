"""Keras' ``utils.to_categorical`` for one-hot labels."""
from __future__ import annotations

import numpy as np


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """Integer class labels -> one-hot rows, as ``keras.utils.to_categorical``.

    Args:
        y: integer labels of any shape (typically ``(N,)``).
        num_classes: number of classes ``K``; ``max(y) + 1`` when omitted.
        dtype: dtype of the result.

    Shape:
        ``(N,)`` -> ``(N, K)``.

    Raises:
        ValueError: labels that are not whole numbers, negative, or not below ``num_classes``.

    Example:
        >>> to_categorical([0, 2], 3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    labels = np.asarray(y)
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise ValueError(f"y must hold integer class labels, got values like {labels.ravel()[:5]!r}")
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}) for num_classes={k}, got the range "
                         f"[{labels.min()}, {labels.max()}]; pass a larger num_classes")
    out = np.zeros((*labels.shape, k), dtype=dtype)  # (N,) -> (N, K)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
