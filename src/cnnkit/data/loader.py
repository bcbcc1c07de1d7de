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

from cnnkit._checks import check_positive_int
from cnnkit.data.normalization import Normalization

if TYPE_CHECKING:
    from cnnkit.data.dataset import ImageData

logger = logging.getLogger(__name__)

Augment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def epoch_permutation(n: int, *, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The order of the ``n`` samples in ``epoch``: a function of ``(seed, epoch)`` only.

    Like ``DistributedSampler``, epoch ``e`` uses a fresh ``torch.Generator`` seeded with
    ``seed + e``, so any epoch can be reproduced (or resumed) without replaying the others.

    Shape:
        ``(n,)`` int64 on the CPU.
    """
    if not shuffle:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator)


def shard_indices(order: torch.Tensor, *, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s share of ``order``: every ``world_size``-th index from ``rank``.

    The order is first padded by wrapping around so that every rank gets the same number of
    samples, ``ceil(n / world_size)`` (as ``DistributedSampler`` does).

    Shape:
        ``(n,)`` -> ``(ceil(n / world_size),)``.
    """
    if world_size == 1:
        return order
    per_rank = -(-order.numel() // world_size)
    padding = per_rank * world_size - order.numel()
    padded = torch.cat([order, order[:padding]]) if padding else order
    return padded[rank::world_size]


class EpochLoader:
    """What both loaders share: epochs as functions of ``(seed, epoch)``, resumable state, and
    the step from a uint8 batch on the device to the training batch.

    Subclasses set ``batch_size``, ``world_size``, ``drop_last``, ``seed``, ``normalization``,
    ``augment``, ``channels_last`` and ``_size`` (samples before sharding), call
    :meth:`_reset_epochs`, and iterate with ``self._start_batch`` / ``self._position``.
    """

    batch_size: int
    world_size: int
    drop_last: bool
    seed: int
    normalization: Normalization
    augment: Augment | None
    channels_last: bool
    _size: int

    def _reset_epochs(self) -> None:
        self.epoch = 0
        self._position = 0  # batches handed out in the current pass
        self._start_batch = 0  # where the next pass starts (set by load_state_dict)

    @property
    def num_samples(self) -> int:
        """Samples per epoch seen by this rank (after sharding, before ``drop_last``)."""
        return -(-self._size // self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use epoch ``epoch``'s permutation, from its first batch."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch
        self._position = 0
        self._start_batch = 0

    def state_dict(self) -> dict[str, int]:
        """Where the loader stands: ``{"seed", "epoch", "batch"}`` (``batch``: next one to give).

        Saved during an epoch (e.g. by a checkpoint after batch ``k``), it resumes at batch
        ``k + 1`` of the same permutation.
        """
        return {"seed": self.seed, "epoch": self.epoch, "batch": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`; the next pass continues from the saved batch.

        Raises:
            ValueError: missing keys, or a batch index past the end of the epoch.
        """
        missing = {"seed", "epoch", "batch"} - set(state)
        if missing:
            raise ValueError(f"loader state is missing {sorted(missing)!r}, got {state!r}")
        if not 0 <= state["batch"] <= len(self):
            raise ValueError(
                f"loader state batch={state['batch']!r} is outside this loader's 0..{len(self)} "
                "batches: was it saved with another batch_size or dataset?"
            )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._position = self._start_batch = int(state["batch"])

    def _finish_batch(self, images: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images on the device -> float32 training batch (augmented, normalised).

        Shape:
            images (B, C, H, W) uint8, y (B,) -> x (B, C, H, W) float32, y (B,) or (B, K).
        """
        if self.augment is None:
            x = self.normalization.apply(images)  # uint8 -> float32, one fused pass
        else:
            # Augment on the 0–1 scale, then normalise (DEVELOPERS.md: augment/ contract).
            x, y = self.augment(images.to(torch.float32).div_(255.0), y)
            x = self.normalization.apply(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


class InMemoryLoader(EpochLoader):
    """Iterate ``(x, y)`` batches of an in-memory :class:`~cnnkit.data.ImageData`.

    The uint8 images and int64 labels are moved to ``device`` once. Each epoch draws a
    permutation from ``(seed, epoch)`` (see :func:`epoch_permutation`); every sample appears
    exactly once per epoch (on each rank's shard). A finished pass advances the epoch, so
    ``for epoch in range(E): for x, y in loader: ...`` sees a new order each time; a pass left
    midway (``break``, ``next(iter(loader))``) does not, and the next pass starts the same
    epoch again. :meth:`set_epoch` chooses an epoch explicitly, and :meth:`state_dict` /
    :meth:`load_state_dict` resume mid-epoch exactly.

    Args:
        data: the images (uint8 ``(N, C, H, W)``) and labels (int64 ``(N,)``).
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
        become ``(B, K)`` soft labels if ``augment`` mixes). ``len(loader)`` is
        ``floor(n / B)`` with ``drop_last`` else ``ceil(n / B)``, ``n`` = samples in the shard.

    Raises:
        ValueError: bad ``batch_size``, ``rank``/``world_size``, or a normalisation whose
            channel count differs from the images'.

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
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.world_size = check_positive_int(world_size, "world_size")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable (x, y) -> (x, y), got {augment!r}")
        images, labels = data.images, data.labels
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"data.images must be a uint8 tensor (N, C, H, W), got {images.dtype} with shape "
                f"{tuple(images.shape)!r}"
            )
        channels = images.shape[1]
        self.normalization = normalization or Normalization.identity(channels)
        if self.normalization.channels != channels:
            raise ValueError(
                f"normalization has {self.normalization.channels} channel(s) but the images have "
                f"{channels}; fit it on these images with Normalization.fit(data.images)"
            )
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.augment = augment
        self.channels_last = bool(channels_last)
        self.rank = rank
        self._size = images.shape[0]
        self._reset_epochs()
        logger.debug("InMemoryLoader: %d images %s on %s, batch %d, %d batches/epoch",
                     images.shape[0], tuple(images.shape[1:]), self.device, batch_size, len(self))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_permutation(self.images.shape[0], seed=self.seed, epoch=self.epoch,
                                  shuffle=self.shuffle)
        order = shard_indices(order, rank=self.rank, world_size=self.world_size)
        order = order.to(self.device)
        start, self._start_batch = self._start_batch, 0
        for b in range(start, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            self._position = b + 1
            yield self._make_batch(idx)
        self.epoch += 1
        self._position = 0

    def _make_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._finish_batch(self.images.index_select(0, idx), self.labels.index_select(0, idx))
