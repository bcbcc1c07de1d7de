"""Batches from plain tensors (``model.fit(x, y)``): a seeded permutation per epoch.

Like :class:`cnnkit.data.loader.InMemoryLoader` but for float inputs of any shape, so the Keras
API and ``Trainer`` work on any ``(x, y)`` pair without the data package.
"""
from __future__ import annotations

import torch

from cnnkit._checks import check_positive_int


class TensorBatches:
    """Iterate ``(x[i], y[i])`` batches; the order of epoch ``e`` depends only on ``(seed, e)``.

    Args:
        x: inputs (N, ...).
        y: targets (N,) or (N, K); None yields ``(x_batch, None)`` (prediction).
        batch_size: samples per batch.
        shuffle: draw a new permutation each epoch.
        seed: base seed of the permutations.

    Shape:
        ``len(self) = ceil(N / batch_size)``.

    Example:
        >>> batches = TensorBatches(torch.zeros(10, 1, 8, 8), torch.zeros(10).long(), batch_size=4)
        >>> len(batches)
        3
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, *, batch_size: int,
                 shuffle: bool = False, seed: int = 0):
        if y is not None and len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}; give one target per "
                             "input")
        self.x, self.y = x, y
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of the next pass (0-based epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], (None if self.y is None else self.y[idx])
