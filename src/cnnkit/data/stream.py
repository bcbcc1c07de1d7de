"""Batches from image files too many to hold in memory, decoded in worker processes.

Each worker takes a whole batch of files per call and decodes them with Pillow
(``decode_image_into``, the rule of ``decode_image``) straight into one preallocated uint8
``(B, C, H, W)`` tensor; the main process only moves it to the training device and
normalises it there, exactly as :class:`~cnnkit.data.loader.InMemoryLoader` does. Epoch order,
``set_epoch`` and ``state_dict`` follow the same rules, so the trainer can use either.

Speed (bench/data_loader.py, section 5 of bench/RESULTS.md): on 28x28 PNGs the loader is
faster than a bare Pillow decode in as many processes, as long as the main process does not
oversubscribe the cores. When the workers already take every core, give the main process
``torch.set_num_threads(max(1, os.cpu_count() - num_workers))`` (or run with
``OMP_WAIT_POLICY=PASSIVE``): after each parallel region (the normalisation, a training step)
OpenMP's idle threads spin and take CPU from the workers; measured on 2 cores with 2 workers,
1.29x the bare decode with 1 main thread, 0.65x with 2, 1.20x with 2 and a passive wait policy.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cnnkit.data.batching import (Augment, ImageLoader, epoch_permutation, move_targets,
                                  shard_indices)
from cnnkit.data.dataset import split_indices
from cnnkit.data.folder import (decode_image, decode_image_into, list_image_folder,
                                 split_folders)
from cnnkit.data.normalization import Normalization
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)


class ImageFileDataset(Dataset):
    """``(path, label)`` files decoded to uint8 ``(C, H, W)`` tensors, one by one or a batch
    at a time.

    Args:
        files: ``(path, label)`` pairs, e.g. from ``list_image_folder``.
        channels: 1 or 3.
        size: ``(H, W)`` every image is resized to (with ``resize``).
        resize: ``"crop"``, ``"stretch"`` or ``"pad"`` (see ``load_image_folder``).
        strict: raise on an unreadable file instead of skipping it.

    Shape:
        ``dataset[i]`` is ``(image (C, H, W) uint8 or None if skipped, label, path)``;
        ``dataset.__getitems__(indices)`` is ``(images (B', C, H, W) uint8 or None, labels (B',)
        int64, skipped paths)`` with ``B' = len(indices) - len(skipped)``.
    """

    def __init__(self, files: Sequence[tuple[Path, int]], *, channels: int,
                 size: tuple[int, int], resize: str = "crop", strict: bool = False) -> None:
        self.files = list(files)
        self.labels = np.array([label for _, label in self.files], dtype=np.int64)
        self.channels = channels
        self.size = size
        self.resize = resize
        self.strict = strict

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, str]:
        images, _, skipped = self.__getitems__([index])
        path, label = self.files[index]
        return (None if skipped else images[0]), label, str(path)

    def __getitems__(self, indices: Sequence[int]):
        """Decode a batch of files straight into one preallocated uint8 tensor.

        The DataLoader calls this once per batch instead of ``__getitem__`` per file and a
        collate that stacks the per-file tensors: measured in one process on the MNIST PNGs of
        bench/data_loader.py, 35 µs per image against 41 µs with per-file tensors + stack.
        """
        images = torch.empty((len(indices), self.channels, *self.size), dtype=torch.uint8)
        out = images.numpy()  # shares the tensor's memory: decoding writes into the batch
        kept: list[int] = []
        skipped: list[str] = []
        for index in indices:
            path = self.files[index][0]
            try:
                decode_image_into(path, out[len(kept)], channels=self.channels, size=self.size,
                                  resize=self.resize)
            except DataError:
                if self.strict:
                    raise
                skipped.append(str(path))
                continue
            kept.append(index)
        if not kept:
            return None, None, skipped
        labels = torch.from_numpy(self.labels[kept])  # (B',) int64
        return images[:len(kept)], labels, skipped


# Decoded batches smaller than this travel from a worker pickled as numpy arrays, larger ones
# as tensors in shared memory. The DataLoader sends a tensor by moving it to shared memory and
# handing its file descriptor over a socket served by a thread of the (busy) worker. Main-process
# CPU per 128-image uint8 batch, pickled vs shared (a synthetic 2-worker DataLoader on the 2-core
# bench machine, quiet): 28x28x1 0.08 vs 0.38 ms, 32x32x3 0.14 vs 0.44, 48x48x3 (0.9 MB) 0.28
# vs 0.57, 64x64x3 (1.5 MB) 1.43 vs 0.89, 224x224x3 18.0 vs 7.0.
PICKLE_BELOW_BYTES = 1024 * 1024


class _Batch:
    """A decoded batch on its way from a worker process to the loader (see
    ``PICKLE_BELOW_BYTES``); ``pin_memory`` is what the DataLoader's pinning thread calls
    (``pin_memory=True`` for a CUDA device)."""

    __slots__ = ("images", "labels", "skipped")

    def __init__(self, images, labels, skipped: list[str]) -> None:
        self.images, self.labels, self.skipped = images, labels, skipped

    @classmethod
    def collate(cls, decoded) -> _Batch:
        """The DataLoader's collate step (in the worker): ``__getitems__``'s batch, small
        ones as numpy arrays."""
        images, labels, skipped = decoded
        if images is not None and images.numel() < PICKLE_BELOW_BYTES:  # uint8: numel = bytes
            return cls(images.numpy(), labels.numpy(), skipped)
        return cls(images, labels, skipped)

    def tensors(self) -> tuple[torch.Tensor | None, torch.Tensor | None, list[str]]:
        """``(images (B', C, H, W) uint8, labels (B',) int64, skipped)``; no copy."""
        if isinstance(self.images, np.ndarray):
            return torch.from_numpy(self.images), torch.from_numpy(self.labels), self.skipped
        return self.images, self.labels, self.skipped

    def pin_memory(self, device=None) -> _Batch:
        images, labels, skipped = self.tensors()
        if images is None:
            return self
        return _Batch(images.pin_memory(), labels.pin_memory(), skipped)


class _EpochBatchSampler(Sampler):
    """Batches of indices of one epoch's permutation, from ``start_batch`` on.

    It runs in the main process and holds its own copy of the epoch state (set by the loader
    before each pass) rather than a reference to the loader: a reference cycle through the
    DataLoader would delay the shutdown of persistent workers until a garbage collection.
    """

    def __init__(self, *, n: int, batch_size: int, num_batches: int, shuffle: bool,
                 rank: int, world_size: int) -> None:
        self.n, self.batch_size, self.num_batches = n, batch_size, num_batches
        self.shuffle, self.rank, self.world_size = shuffle, rank, world_size
        self.seed = self.epoch = self.start_batch = 0

    def __len__(self) -> int:
        return self.num_batches - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.n, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
        order = shard_indices(order, rank=self.rank, world_size=self.world_size).tolist()
        b = self.batch_size
        for start in range(self.start_batch * b, self.num_batches * b, b):
            yield order[start:start + b]


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # decoding is Pillow's work; one torch thread per worker is enough


class StreamingLoader(ImageLoader):
    """Iterate ``(x, y)`` batches of an image folder, decoding in ``num_workers`` processes.

    Same interface and epoch rules as :class:`~cnnkit.data.loader.InMemoryLoader`
    (``set_epoch``, ``state_dict``, ``len``); unreadable files are skipped (each batch may then
    be smaller, ``skipped`` lists them) unless ``strict``.

    Args:
        files: ``(path, label)`` pairs; see :meth:`from_folder` for ``root/<class>/`` folders.
        class_names: one name per label.
        batch_size, shuffle, drop_last, seed, device, normalization, augment, channels_last,
            rank, world_size: as in ``InMemoryLoader``.
        size: ``(H, W)`` or an int; default the first image's size (others are resized to it).
        channels: 1 or 3; default the first image's (1 for grayscale, else 3).
        resize: ``"crop"``, ``"stretch"`` or ``"pad"``.
        strict: raise on the first unreadable image.
        num_workers: decoding processes (0 decodes in the main process).
        prefetch_factor: batches each worker prepares ahead.

    Shape:
        Yields ``x`` float32 ``(B, C, H, W)`` and ``y`` int64 ``(B,)`` on ``device``.

    Raises:
        ValueError: bad ``batch_size``/``num_workers`` or a normalisation with other channels.
        DataError: no files, or an unreadable first image.

    Example:
        >>> loader = StreamingLoader.from_folder("data/pets/train", batch_size=64, size=128,
        ...                                      num_workers=4)
        >>> norm = Normalization.fit_batches(loader.raw_batches())
    """

    def __init__(
        self,
        files: Sequence[tuple[Path, int]],
        class_names: Sequence[str],
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        normalization: Normalization | None = None,
        augment: Augment | None = None,
        channels_last: bool = False,
        size=None,
        channels: int | None = None,
        resize: str = "crop",
        strict: bool = False,
        num_workers: int = 2,
        prefetch_factor: int = 2,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(len(files), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                         seed=seed, rank=rank, world_size=world_size, device=device,
                         augment=augment, channels_last=channels_last)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0 (0: decode in this process), got "
                             f"{num_workers!r}; os.cpu_count() is {os.cpu_count()}")
        if not files:
            raise DataError("StreamingLoader got no image files; check the folder")
        first = decode_image(files[0][0], channels=channels, size=size, resize=resize)
        c, h, w = first.shape
        self.dataset = ImageFileDataset(files, channels=c, size=(h, w), resize=resize,
                                        strict=strict)
        self.class_names = list(class_names)
        self.input_shape = (c, h, w)
        self._set_normalization(
            normalization, c, images="the images are decoded with",
            fix=f"pass channels={getattr(normalization, 'channels', c)} or refit it")
        self.skipped: list[str] = []
        self._sampler = _EpochBatchSampler(n=len(files), batch_size=batch_size,
                                           num_batches=len(self), shuffle=self.shuffle,
                                           rank=self.rank, world_size=self.world_size)
        self._num_workers, self._prefetch_factor = num_workers, prefetch_factor
        self._loader = self._make_loader(self._sampler, num_workers, prefetch_factor)

    @classmethod
    def from_folder(cls, root: str | os.PathLike, **kwargs) -> StreamingLoader:
        """A loader over ``root/<class name>/<image>`` (see ``list_image_folder``)."""
        files, class_names = list_image_folder(root)
        return cls(files, class_names, **kwargs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.skipped = []
        b = self._sampler.start_batch = self._start_batch
        self._sampler.seed, self._sampler.epoch = self.seed, self.epoch
        try:
            for batch in self._loader:
                images, labels, skipped = batch.tensors()
                b += 1
                self._position = b
                self.skipped.extend(skipped)
                if images is None:
                    continue
                yield self._make_batch(images, labels)
        finally:
            self._start_batch = 0
        if self.skipped:
            logger.warning("skipped %d unreadable image(s) in epoch %d (first: %s); pass "
                           "strict=True to stop at the first one", len(self.skipped), self.epoch,
                           self.skipped[0])
        self.epoch += 1
        self._position = 0

    def raw_batches(self) -> Iterator[torch.Tensor]:
        """Every image once, in file order, as uint8 ``(B, C, H, W)`` CPU batches (for fitting
        a :class:`Normalization` with ``Normalization.fit_batches``)."""
        sequential = self._make_loader(
            [list(range(i, min(i + self.batch_size, len(self.dataset))))
             for i in range(0, len(self.dataset), self.batch_size)],
            self._num_workers, self._prefetch_factor, persistent=False)
        for batch in sequential:
            images = batch.tensors()[0]
            if images is not None:
                yield images

    def _make_loader(self, batch_sampler, num_workers: int, prefetch_factor: int, *,
                     persistent: bool = True) -> DataLoader:
        workers = {"prefetch_factor": prefetch_factor, "persistent_workers": persistent,
                   "worker_init_fn": _worker_init} if num_workers > 0 else {}
        return DataLoader(self.dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                          collate_fn=_Batch.collate, pin_memory=self.device.type == "cuda",
                          **workers)

    def _make_batch(self, images: torch.Tensor,
                    labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._finish_batch(images.to(self.device, non_blocking=True),
                                  move_targets(labels, self.device, non_blocking=True))


# Image folders whose decoded uint8 training set would exceed this stream from disk when the
# choice is left to cnnkit (``TrainConfig.stream = None``): below it, decoding once into memory
# and batching by index is faster.
STREAM_ABOVE_BYTES = 2 * 1024 ** 3

Files = list[tuple[Path, int]]


@dataclass(frozen=True)
class FileSplits:
    """An image folder's files split into train / val / test, like ``open_data`` splits images.

    Args:
        train, val, test: ``(path, label)`` lists (val/test None when absent).
        class_names: one name per label, from the class folder names.
    """

    train: Files
    val: Files | None
    test: Files | None
    class_names: list[str]


def folder_file_splits(root, *, val_split: float = 0.0, seed: int = 0) -> FileSplits:
    """List ``root``'s images (optionally under train/ and val/ or test/) without decoding.

    With ``val_split > 0`` and no val/ folder, a seeded, stratified share of the training files
    becomes the validation set (the same rule as ``ImageData.split``).

    Raises:
        DataError: no images, an empty class folder, or splits with different classes.
    """
    parts = split_folders(root)
    train, names = list_image_folder(parts.get("train", root))
    others: dict[str, Files | None] = {"val": None, "test": None}
    for split in others:
        if split in parts:
            files, split_names = list_image_folder(parts[split])
            if split_names != names:
                raise DataError(f"{parts[split]} has the classes {split_names!r} but "
                                f"{parts['train']} has {names!r}; give every split the same "
                                "class folders")
            others[split] = files
    if val_split > 0 and others["val"] is None:
        labels = torch.tensor([label for _, label in train])
        rest, held = split_indices(labels, len(names), val_split, seed=seed)
        train, others["val"] = [train[i] for i in rest.tolist()], [train[i] for i in held.tolist()]
    return FileSplits(train, others["val"], others["test"], names)


def decoded_bytes(files: Files, *, size=None, channels: int | None = None) -> int:
    """Bytes the files would take decoded as uint8 (C, H, W), estimated from the first one."""
    c, h, w = decode_image(files[0][0], channels=channels, size=size).shape
    return len(files) * c * h * w


def fit_normalization(loader: StreamingLoader, *, max_images: int = 10_000,
                      seed: int = 0) -> Normalization:
    """Per-channel mean/std from a seeded sample of at most ``max_images`` of the loader's files
    (decoding a whole large folder only for the statistics would cost a full epoch)."""
    dataset = loader.dataset
    picks = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    sample = [dataset[i][0] for i in picks[:max_images].tolist()]
    return Normalization.fit(torch.stack([img for img in sample if img is not None]))
