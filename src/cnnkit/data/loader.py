"""Batches from a dataset held in memory as one uint8 tensor on the training device.

No ``Dataset.__getitem__``, no collate, no per-sample Python: every batch is one
``index_select`` of the uint8 images by a slice of a seeded permutation, then one fused
normalise (``(x/255 - mean)/std``) on the device. MNIST (47 MB) or CIFAR-10 (150 MB) fit
easily; larger image folders go through :mod:`cnnkit.data.stream`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from cnnkit.data.batching import (Augment, EpochLoader, ImageLoader, Targets, check_targets,
                                  epoch_permutation, move_targets, select_targets,
                                  shard_indices)
from cnnkit.data.normalization import Normalization

if TYPE_CHECKING:
    from cnnkit.data.dataset import ImageData

__all__ = ["Augment", "EpochLoader", "InMemoryLoader", "TensorBatches", "epoch_permutation",
           "shard_indices"]

logger = logging.getLogger(__name__)


class InMemoryLoader(ImageLoader):
    """Iterate ``(x, y)`` batches of an in-memory :class:`~cnnkit.data.ImageData`.

    The uint8 images and int64 labels are moved to ``device`` once. Each epoch draws a
    permutation from ``(seed, epoch)`` (see :func:`epoch_permutation`); every sample appears
    exactly once per epoch (on each rank's shard). A finished pass advances the epoch, so
    ``for epoch in range(E): for x, y in loader: ...`` sees a new order each time; a pass left
    midway (``break``, ``next(iter(loader))``) does not, and the next pass starts the same
    epoch again. :meth:`set_epoch` chooses an epoch explicitly, and :meth:`state_dict` /
    :meth:`load_state_dict` resume mid-epoch exactly.

    Args:
        data: the images (uint8 ``(N, C, H, W)``) and labels (int64 ``(N,)``), e.g. an
            ``ImageData``; data with a ``targets()`` method (``AnnotatedData``) yields its
            dict of target tensors instead, e.g. ``{"labels": (N,), "boxes": (N, 4)}``.
        batch_size: samples per batch ``B``.
        shuffle: draw a new permutation each epoch (training); ``False`` keeps file order.
        drop_last: skip the last, smaller batch.
        seed: base seed of the permutations.
        device: where the tensors live and batches are made (``"cpu"``, ``"cuda"``, ...).
        normalization: the per-channel transform; ``None`` only scales 0–255 to 0–1.
        augment: ``(x, y) -> (x, y)`` applied to each float batch on the 0–1 scale, *before*
            mean/std normalisation (training only), so colour jitter sees real intensities.
        channels_last: return ``x`` in ``torch.channels_last`` memory format.
        rank, world_size: take only shard ``rank`` of ``world_size`` (distributed training).

    Shape:
        Yields ``x`` float32 ``(B, C, H, W)`` and ``y`` int64 ``(B,)`` on ``device`` (``y`` may
        become ``(B, K)`` soft labels if ``augment`` mixes; with dict targets, a dict of
        ``(B, ...)`` tensors). ``len(loader)`` is ``floor(n / B)`` with ``drop_last`` else
        ``ceil(n / B)``, ``n`` = samples in the shard.

    Raises:
        ValueError: bad ``batch_size``, ``rank``/``world_size``, or a normalisation whose
            channel count differs from the images'; targets with another sample count.
        TypeError: ``shuffle``/``drop_last``/``channels_last`` not a bool, ``seed`` not an int,
            ``augment`` not callable (the checks of :class:`~cnnkit.data.batching.EpochLoader`).

    Example:
        >>> loader = InMemoryLoader(splits.train, batch_size=128, normalization=norm)
        >>> for x, y in loader:
        ...     loss = F.cross_entropy(model(x), y)
    """

    def __init__(
        self,
        data: ImageData,
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        normalization: Normalization | None = None,
        augment: Augment | None = None,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        images = data.images
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"data.images must be a uint8 tensor (N, C, H, W), got "
                f"{getattr(images, 'dtype', type(images).__name__)} with shape "
                f"{tuple(getattr(images, 'shape', ()))!r}"
            )
        super().__init__(images.shape[0], batch_size=batch_size, shuffle=shuffle,
                         drop_last=drop_last, seed=seed, rank=rank, world_size=world_size,
                         device=device, augment=augment, channels_last=channels_last)
        targets = data.targets() if callable(getattr(data, "targets", None)) else data.labels
        targets = check_targets(targets, images.shape[0], "data.labels", "data.images")
        self._set_normalization(normalization, images.shape[1], images="the images have",
                                fix="fit it on these images with Normalization.fit(data.images)")
        self.images = images.to(self.device)
        self.labels = move_targets(targets, self.device)
        logger.debug("InMemoryLoader: %d images %s on %s, batch %d, %d batches/epoch",
                     images.shape[0], tuple(images.shape[1:]), self.device, batch_size, len(self))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Targets]]:
        for idx in self._index_batches():
            yield self._finish_batch(self.images.index_select(0, idx),
                                     select_targets(self.labels, idx))


class TensorBatches(EpochLoader):
    """Iterate ``(x[i], y[i])`` batches of plain tensors (``model.fit(x, y)``).

    Like :class:`InMemoryLoader` but for inputs of any dtype and shape, taken as they are (no
    normalisation, no augmentation, no copy to another device), so the Keras API and ``Trainer``
    work on any ``(x, y)`` pair. Epoch order, sharding, ``set_epoch`` and ``state_dict`` are
    those of :class:`~cnnkit.data.batching.EpochLoader`: for the same ``seed``, ``epoch`` and
    ``batch_size`` the batches hold the same samples as ``InMemoryLoader``'s.

    Args:
        x: inputs ``(N, ...)``.
        y: targets ``(N,)`` or ``(N, K)``, or a dict of tensors indexed along dim 0 (e.g.
            ``{"labels": (N,), "boxes": (N, 4)}``); None yields ``(x_batch, None)`` (prediction).
        batch_size, shuffle, drop_last, seed, rank, world_size: as in :class:`InMemoryLoader`
            (but ``shuffle`` defaults to ``False``).
        transform: applied to each ``x`` batch as it is taken (e.g. uint8 pixels -> 0-1
            floats, so that the whole set never exists in float32); None yields it as it is.

    Shape:
        Yields ``x`` ``(B, ...)`` and ``y`` ``(B,)``, ``(B, K)`` or a dict of ``(B, ...)``, on
        ``x``'s device. ``len(self) = ceil(N / batch_size)`` (one rank, no ``drop_last``).

    Raises:
        ValueError: ``y`` with another number of samples than ``x`` (and the argument checks of
            :class:`~cnnkit.data.batching.EpochLoader`).
        TypeError: ``x`` not a tensor, ``y`` neither a tensor nor a dict of tensors.

    Example:
        >>> batches = TensorBatches(torch.zeros(10, 1, 8, 8), torch.zeros(10).long(), batch_size=4)
        >>> len(batches)
        3
    """

    def __init__(self, x: torch.Tensor, y: Targets | None, *, batch_size: int,
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise TypeError(f"x must be a tensor (N, ...), got {type(x).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a function of the x batch, got "
                            f"{type(transform).__name__}")
        super().__init__(len(x), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                         seed=seed, rank=rank, world_size=world_size, device=x.device)
        self.x = x
        self.y = None if y is None else check_targets(y, len(x))
        self.transform = transform

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Targets | None]]:
        for idx in self._index_batches():
            x = self.x.index_select(0, idx)
            yield (x if self.transform is None else self.transform(x),
                   None if self.y is None else select_targets(self.y, idx))
