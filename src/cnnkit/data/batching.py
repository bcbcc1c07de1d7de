"""What every cnnkit batch loader shares: arguments, epoch order, sharding and resumable state.

Three loaders build on :class:`EpochLoader`: :class:`~cnnkit.data.loader.InMemoryLoader` (uint8
images on the device), :class:`~cnnkit.data.stream.StreamingLoader` (image files decoded in
worker processes) and :class:`~cnnkit.data.loader.TensorBatches` (plain tensors,
``model.fit(x, y)``). The base validates ``batch_size``, ``shuffle``, ``drop_last``, ``seed``,
``rank``/``world_size`` and ``device`` once, with one message per mistake, and owns the order of
each epoch (a function of ``(seed, epoch)`` only), its shard, ``len``, ``set_epoch`` and
``state_dict``/``load_state_dict``; :class:`ImageLoader` adds what the two image loaders share
(``normalization``, ``augment``, ``channels_last``). A subclass keeps only how it makes a batch.

Targets are a tensor ``(N,)`` / ``(N, K)`` or a dict of tensors indexed along dim 0, e.g.
``{"labels": (N,), "boxes": (N, 4)}`` or ``{"masks": (N, H, W)}``; a batch of them is the same
kind of value with ``B`` rows (see :func:`select_targets`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Union

import torch

from cnnkit._checks import check_positive_int
from cnnkit.data.normalization import Normalization

Targets = Union[torch.Tensor, dict[str, torch.Tensor]]
Augment = Callable[[torch.Tensor, Targets], tuple[torch.Tensor, Targets]]


def check_bool(value, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False``, else raise a TypeError naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_rank(rank, world_size: int) -> int:
    """Return ``rank`` if it is an int in ``[0, world_size)``, else raise a ValueError."""
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
    return rank


def check_targets(targets, n: int, name: str = "y", inputs: str = "x") -> Targets:
    """Check that ``targets`` (a tensor or a dict of tensors) has ``n`` rows along dim 0, one
    per sample of ``inputs`` (named in the error).

    Raises:
        TypeError: neither a tensor nor a dict of tensors.
        ValueError: an empty dict, or a row count other than ``n``.
    """
    if isinstance(targets, torch.Tensor):
        rows = len(targets) if targets.dim() else 0
        if targets.dim() == 0 or rows != n:
            raise ValueError(f"{inputs} has {n} samples but {name} has {rows} (shape "
                             f"{tuple(targets.shape)!r}); give one target per input (dim 0)")
        return targets
    if not isinstance(targets, Mapping):
        raise TypeError(f"{name} must be a tensor or a dict of tensors, got "
                        f"{type(targets).__name__}")
    if not targets:
        raise ValueError(f"{name} is an empty dict; give at least one target tensor, e.g. "
                         "{'labels': labels}")
    for key, value in targets.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}[{key!r}] must be a tensor, got {type(value).__name__}")
        check_targets(value, n, f"{name}[{key!r}]", inputs)
    return dict(targets)


def select_targets(targets: Targets, idx: torch.Tensor) -> Targets:
    """The rows ``idx`` of a target tensor, or of each tensor of a target dict.

    Shape:
        ``(N, ...)`` -> ``(B, ...)`` with ``B = len(idx)``, for each tensor.
    """
    if isinstance(targets, torch.Tensor):
        return targets.index_select(0, idx.to(targets.device))
    return {key: value.index_select(0, idx.to(value.device)) for key, value in targets.items()}


def move_targets(targets: Targets, device: torch.device, *,
                 non_blocking: bool = False) -> Targets:
    """``targets`` (a tensor or each tensor of a dict) on ``device``."""
    if isinstance(targets, torch.Tensor):
        return targets.to(device, non_blocking=non_blocking)
    return {key: value.to(device, non_blocking=non_blocking) for key, value in targets.items()}


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
    """Epochs of batches as functions of ``(seed, epoch)``, sharded, with resumable state.

    A finished pass advances the epoch, so ``for epoch in range(E): for batch in loader: ...``
    sees a new order each time; a pass left midway (``break``, ``next(iter(loader))``) does
    not, and the next pass starts the same epoch again. :meth:`set_epoch` chooses an epoch
    explicitly, and :meth:`state_dict` / :meth:`load_state_dict` resume mid-epoch exactly.
    Subclasses iterate over :meth:`_index_batches` and turn each index batch into a batch.

    Args:
        size: samples in the whole dataset ``n`` (before sharding).
        batch_size: samples per batch ``B``.
        shuffle: draw a new permutation each epoch (training); ``False`` keeps the data order.
        drop_last: skip the last, smaller batch.
        seed: base seed of the permutations.
        rank, world_size: take only shard ``rank`` of ``world_size`` (distributed training).
        device: where the index batches are made (the data's device).

    Shape:
        ``len(loader)`` is ``floor(n' / B)`` with ``drop_last`` else ``ceil(n' / B)``, with
        ``n' = ceil(n / world_size)`` the samples of one shard.

    Raises:
        TypeError: ``batch_size``, ``world_size`` or ``seed`` not an int, ``shuffle`` or
            ``drop_last`` not a bool.
        ValueError: ``batch_size`` or ``world_size`` below 1, ``rank`` outside
            ``[0, world_size)``.

    Example:
        >>> loader = TensorBatches(torch.zeros(10, 3), None, batch_size=4)  # a subclass
        >>> len(loader), loader.state_dict()
        (3, {'seed': 0, 'epoch': 0, 'batch': 0})
    """

    def __init__(self, size: int, *, batch_size: int, shuffle: bool, drop_last: bool, seed: int,
                 rank: int, world_size: int, device: str | torch.device) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.shuffle = check_bool(shuffle, "shuffle")
        self.drop_last = check_bool(drop_last, "drop_last")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.world_size = check_positive_int(world_size, "world_size")
        self.rank = check_rank(rank, self.world_size)
        self.device = torch.device(device)
        self._size = size
        self._reset_epochs()

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

    def epoch_order(self) -> torch.Tensor:
        """This rank's order of the samples in the current epoch.

        Shape:
            ``(ceil(n / world_size),)`` int64 on the CPU.
        """
        order = epoch_permutation(self._size, seed=self.seed, epoch=self.epoch,
                                  shuffle=self.shuffle)
        return shard_indices(order, rank=self.rank, world_size=self.world_size)

    def _index_batches(self) -> Iterator[torch.Tensor]:
        """One pass: the index batches from the resume point on, then the epoch advances.

        Shape:
            Yields ``(B,)`` int64 on ``device`` (the last one shorter without ``drop_last``).
        """
        order = self.epoch_order().to(self.device)
        start, self._start_batch = self._start_batch, 0
        for b in range(start, len(self)):
            self._position = b + 1
            yield order[b * self.batch_size:(b + 1) * self.batch_size]
        self.epoch += 1
        self._position = 0

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


class ImageLoader(EpochLoader):
    """An :class:`EpochLoader` of uint8 images: the step from a uint8 batch on the device to
    the training batch (augment on the 0–1 scale, normalise, memory format).

    Args:
        size, batch_size, shuffle, drop_last, seed, rank, world_size, device: as in
            :class:`EpochLoader`.
        augment: ``(x, y) -> (x, y)`` applied to each float batch on the 0–1 scale, *before*
            mean/std normalisation (training only), so colour jitter sees real intensities.
        channels_last: return ``x`` in ``torch.channels_last`` memory format (``None``: no,
            the trainer decides).

    Subclasses call :meth:`_set_normalization` once they know the images' channel count.

    Raises:
        TypeError: ``augment`` not callable, ``channels_last`` not a bool (and as
            :class:`EpochLoader`).
    """

    normalization: Normalization

    def __init__(self, size: int, *, augment: Augment | None, channels_last: bool | None,
                 **order) -> None:
        super().__init__(size, **order)
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable (x, y) -> (x, y), got {augment!r}")
        self.augment = augment
        # None (TrainConfig's "decide from the precision") leaves the memory format to the
        # trainer, which converts each batch itself.
        self.channels_last = (False if channels_last is None
                              else check_bool(channels_last, "channels_last"))

    def _set_normalization(self, normalization: Normalization | None, channels: int, *,
                           images: str, fix: str) -> None:
        """Use ``normalization`` (``None``: scale 0–255 to 0–1) for ``channels``-channel images.

        Raises:
            ValueError: its channel count is not ``channels``: "normalization has 3 channel(s)
                but {images} 1; {fix}".
        """
        self.normalization = normalization or Normalization.identity(channels)
        if self.normalization.channels != channels:
            raise ValueError(f"normalization has {self.normalization.channels} channel(s) but "
                             f"{images} {channels}; {fix}")

    def _finish_batch(self, images: torch.Tensor, y: Targets) -> tuple[torch.Tensor, Targets]:
        """uint8 images on the device -> float32 training batch (augmented, normalised).

        Shape:
            images (B, C, H, W) uint8, y (B,) -> x (B, C, H, W) float32, y (B,) or (B, K)
            (or the dict of target batches, as the augmentation leaves it).
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
