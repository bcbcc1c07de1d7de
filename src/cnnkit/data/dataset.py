"""The in-memory dataset every reader returns: uint8 images, int64 labels, class names.

``ImageData`` holds a whole labelled image set as two tensors, ready for a loader that indexes
them in batches; ``DataSplits`` groups the train/val/test parts of one dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cnnkit._checks import check_probability, format_shape_hwc
from cnnkit.errors import DataError

# More classes than any real dataset (ImageNet-21k has 21,841): a larger label in a file is
# corruption, and naming every index up to it would exhaust memory.
MAX_CLASSES = 100_000
# How many offending labels an error message shows (indices and values).
SHOWN_LABELS = 5


def index_class_names(max_label: int, source: str) -> list[str]:
    """The default class names ``["0", "1", ..., str(max_label)]`` of integer labels.

    Raises:
        DataError: ``max_label`` is ``MAX_CLASSES`` or more (a corrupt label file).

    Example:
        >>> index_class_names(2, "labels.idx")
        ['0', '1', '2']
    """
    if max_label >= MAX_CLASSES:
        raise DataError(f"label {max_label} in {source} is too large: more than {MAX_CLASSES} "
                        "classes is not a real dataset (the labels are corrupt?); fix the "
                        "labels or pass class_names")
    return [str(k) for k in range(max(max_label, 0) + 1)]


def _as_numpy(labels) -> np.ndarray:
    """Labels as a numpy array (a torch tensor is copied off its device first if needed)."""
    return labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)


def _describe(labels: np.ndarray, bad: np.ndarray) -> str:
    """``"3 label(s) (at indices [4, 9, 17], values [200, 255, 200])"`` for the ``bad`` mask
    (the first ``SHOWN_LABELS``, then ``...``)."""
    indices = np.flatnonzero(bad)
    shown = indices[:SHOWN_LABELS]
    more = ", ..." if len(indices) > SHOWN_LABELS else ""
    return (f"{len(indices)} label(s) (at indices {str(shown.tolist())[:-1]}{more}], values "
            f"{str(labels[shown].tolist())[:-1]}{more}])")


def check_label_range(labels, num_classes: int, source: str, *, fix: str | None = None) -> None:
    """Refuse labels outside ``[0, num_classes)``, naming how many, where and which.

    The one range check of every reader: :class:`ImageData` runs it, and named datasets
    (MNIST, Fashion-MNIST, CIFAR) run it with their fixed class count and ``fix`` telling the
    user to download the files again.

    Args:
        labels: integer labels, numpy or torch, shape (N,).
        num_classes: the number of classes K; labels must be 0..K-1.
        source: where the labels come from, for the message.
        fix: what the user should do; default: fix the labels or pass the full class_names.

    Raises:
        DataError: some label is negative or ``>= num_classes``.

    Example:
        >>> check_label_range(np.array([0, 9, 200]), 10, "mnist train")
        Traceback (most recent call last):
        cnnkit.errors.DataError: mnist train: 1 label(s) (at indices [2], values [200]) ...
    """
    values = _as_numpy(labels)
    bad = (values < 0) | (values >= num_classes)
    if bad.any():
        fix = fix or "fix the labels or pass the full list of class_names"
        raise DataError(f"{source}: {_describe(values, bad)} outside [0, {num_classes}) for "
                        f"{num_classes} classes; {fix}")


def default_class_names(labels, source: str, *, allow_label_gaps: bool = False) -> list[str]:
    """The class names ``["0", ..., str(K - 1)]`` of integer labels that have no names.

    Labels must be 0..K-1 with every class used: a set such as {0, 1, 2, 200} is most likely a
    corrupt or mis-encoded label file, and would silently train a 201-class model. With
    ``allow_label_gaps=True`` it is accepted as it is (no remapping): K = max label + 1, and the
    unused classes are ordinary logits the data never asks for.

    Args:
        labels: integer labels, numpy or torch, shape (N,).
        source: where the labels come from, for the message.
        allow_label_gaps: accept labels with unused classes below their maximum.

    Raises:
        DataError: a negative label; a gap (the message names the first unused class, how many
            labels lie above it, their first indices and values); a label of ``MAX_CLASSES``
            or more.

    Example:
        >>> default_class_names(np.array([0, 2, 1]), "labels.idx")
        ['0', '1', '2']
    """
    values = _as_numpy(labels)
    if len(values) == 0:
        return index_class_names(0, source)
    if values.min() < 0:
        raise DataError(f"{source}: {_describe(values, values < 0)} are negative; class "
                        "indices start at 0, fix the labels")
    top = int(values.max())
    index_class_names(top, source)  # refuses an absurd maximum before bincount allocates it
    used = np.bincount(values.astype(np.int64), minlength=top + 1) > 0
    if not used.all() and not allow_label_gaps:
        first_gap = int(np.flatnonzero(~used)[0])
        unused = int((~used).sum())
        raise DataError(
            f"{source}: labels are not 0..K-1 without gaps: class {first_gap} has no label "
            f"({unused} of the classes 0..{top} are unused) and "
            f"{_describe(values, values > first_gap)} lie above it; fix those labels (a "
            f"corrupt file?), pass class_names, or pass allow_label_gaps=True to train a "
            f"{top + 1}-class model whose unused classes never appear")
    return index_class_names(top, source)


@dataclass
class ImageData:
    """A labelled image set held in memory.

    Args:
        images: uint8 tensor (N, C, H, W), pixel values 0..255.
        labels: int64 tensor (N,), each in ``[0, len(class_names))``.
        class_names: one name per class; label ``k`` means ``class_names[k]``.
        source: where the data came from (a file or folder), used in error messages.
        skipped: files a reader could not decode and left out (``strict=False`` readers only).

    Shape:
        images (N, C, H, W); labels (N,); ``input_shape`` is (C, H, W).

    Raises:
        TypeError: images or labels are not tensors.
        DataError: wrong dtype or rank, N disagreeing, or a label outside the classes.

    Example:
        >>> data = ImageData(torch.zeros(4, 1, 28, 28, dtype=torch.uint8),
        ...                  torch.tensor([0, 1, 0, 1]), ["cat", "dog"])
        >>> data.input_shape, data.num_classes
        ((1, 28, 28), 2)
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str = ""
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        if not isinstance(self.images, torch.Tensor):
            raise TypeError(f"images{where} must be a torch.Tensor, got "
                            f"{type(self.images).__name__}; use cnnkit.data.from_arrays for "
                            "numpy arrays")
        if not isinstance(self.labels, torch.Tensor):
            raise TypeError(f"labels{where} must be a torch.Tensor, got "
                            f"{type(self.labels).__name__}; use cnnkit.data.from_arrays for "
                            "numpy arrays")
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                f"images{where} must be a uint8 tensor (N, C, H, W), got {self.images.dtype} with "
                f"shape {tuple(self.images.shape)}; use cnnkit.data.from_arrays to convert"
            )
        if self.labels.dtype != torch.int64 or self.labels.ndim != 1:
            raise DataError(
                f"labels{where} must be an int64 tensor (N,), got {self.labels.dtype} with shape "
                f"{tuple(self.labels.shape)}; convert with labels.long()"
            )
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels{where}; "
                            "every image needs exactly one label")
        self.class_names = [str(name) for name in self.class_names]
        if not self.class_names:
            raise DataError(f"class_names{where} is empty; give one name per class")
        if len(set(self.class_names)) != len(self.class_names):
            raise DataError(f"class_names{where} has duplicates: {self.class_names!r}")
        check_label_range(self.labels, len(self.class_names), f"labels{where}")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"ImageData({len(self)} images {format_shape_hwc(self.input_shape)}, "
                f"{self.num_classes} classes, source={self.source!r})")

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``), even if some have no image here."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image, (C, H, W)."""
        _, c, h, w = self.images.shape
        return (c, h, w)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class, in class order (classes without images count 0)."""
        counts = torch.bincount(self.labels, minlength=self.num_classes)
        return {name: int(n) for name, n in zip(self.class_names, counts)}

    def subset(self, indices) -> ImageData:
        """A new ImageData with the images at ``indices`` (a sequence, tensor or slice).

        Example:
            >>> first_ten = data.subset(range(10))
        """
        index = subset_index(indices, len(self))
        return ImageData(self.images[index], self.labels[index], list(self.class_names),
                         source=self.source)

    def split(self, fraction: float, *, seed: int = 0,
              stratify: bool = True) -> tuple[ImageData, ImageData]:
        """Split into (rest, held_out) with ``round(fraction * N)`` images held out.

        With ``stratify`` each class gives the same share to the held-out part (largest
        remainders decide the rounding), so both parts keep the class balance. The same seed
        always gives the same split; both parts keep the original order of the images.

        Args:
            fraction: share of the images in the second part, in (0, 1).
            seed: seed of the shuffle.
            stratify: keep the per-class proportions in both parts.

        Raises:
            ValueError: fraction outside (0, 1), or one part would be empty.

        Example:
            >>> train, val = data.split(0.1, seed=0)
        """
        rest_index, held_index = split_indices(self.labels, self.num_classes, fraction,
                                               seed=seed, stratify=stratify)
        return self.subset(rest_index), self.subset(held_index)


def subset_index(indices, n: int) -> torch.Tensor:
    """``indices`` (a sequence, range, slice or int64 tensor of positions in [0, n)) as a tensor.

    Shared by :meth:`ImageData.subset` and ``AnnotatedData.subset``.

    Shape:
        ``(B,)`` int64.

    Raises:
        ValueError: indices that are not one-dimensional.
        IndexError: an index outside [0, n) (negative ones count from the end, as in Python).
    """
    if isinstance(indices, slice):
        index = torch.arange(n)[indices]
    else:
        index = torch.as_tensor(list(indices) if isinstance(indices, range) else indices,
                                dtype=torch.int64)
    if index.ndim != 1:
        raise ValueError(f"indices must be one-dimensional, got shape {tuple(index.shape)}")
    if len(index) and (int(index.min()) < -n or int(index.max()) >= n):
        raise IndexError(f"indices must be in [0, {n}), got min {int(index.min())} "
                         f"and max {int(index.max())}")
    return index


def split_indices(labels: torch.Tensor, num_classes: int, fraction: float, *, seed: int = 0,
                  stratify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded (stratified) split: ``(rest, held_out)``, each in original order.

    ``round(fraction * N)`` samples are held out; with ``stratify`` each class gives the same
    share (largest remainders decide the rounding). Used for images in memory
    (:meth:`ImageData.split`) and for file lists that stream from disk.

    Shape:
        labels (N,) int64 -> rest (N - n_held,), held_out (n_held,) int64.

    Raises:
        ValueError: fraction outside (0, 1), or one part would be empty.
    """
    fraction = check_probability(fraction, "fraction")
    n = len(labels)
    n_held = round(fraction * n)
    if fraction == 0.0 or n_held == 0 or n_held == n:
        raise ValueError(f"fraction={fraction!r} of {n} images leaves one part empty; "
                         "use a fraction that puts at least one image in each part")
    generator = torch.Generator().manual_seed(seed)
    if stratify:
        held = _stratified_held_out(labels, num_classes, fraction, n_held, generator)
    else:
        held = torch.randperm(n, generator=generator)[:n_held]
    is_held = torch.zeros(n, dtype=torch.bool)
    is_held[held] = True
    rest_index = torch.nonzero(~is_held).flatten()  # (N_rest, 1) -> (N_rest,)
    held_index = torch.nonzero(is_held).flatten()  # (N_held, 1) -> (N_held,)
    return rest_index, held_index


def _stratified_held_out(labels: torch.Tensor, num_classes: int, fraction: float, n_held: int,
                         generator: torch.Generator) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=num_classes).double()
    quota = counts * fraction
    take = quota.floor().long()
    remainder = (quota - take).tolist()
    by_remainder = sorted(range(num_classes), key=lambda k: (-remainder[k], k))
    for k in by_remainder[: n_held - int(take.sum())]:
        take[k] += 1
    held = []
    for k in range(num_classes):
        members = torch.nonzero(labels == k).flatten()  # (N_k, 1) -> (N_k,)
        order = torch.randperm(len(members), generator=generator)
        held.append(members[order[: int(take[k])]])
    return torch.cat(held)


@dataclass
class DataSplits:
    """The train part of a dataset and, when there are any, its val and test parts.

    Args:
        train: the training images.
        val: images for choosing hyper-parameters and early stopping, or None.
        test: images held out for the final score, or None.

    Raises:
        DataError: the parts disagree on class names or image shape (C, H, W).

    Example:
        >>> splits = DataSplits(train, test=test)
        >>> splits.class_names
        ['0', '1', ...]
    """

    train: ImageData
    val: ImageData | None = None
    test: ImageData | None = None

    def __post_init__(self) -> None:
        for name, part in self.parts().items():
            if part.class_names != self.train.class_names:
                raise DataError(
                    f"the {name} split ({part.source or 'no source'}) has classes "
                    f"{part.class_names!r} but train ({self.train.source or 'no source'}) has "
                    f"{self.train.class_names!r}; every split needs the same classes in the "
                    "same order"
                )
            if part.input_shape != self.train.input_shape:
                raise DataError(
                    f"the {name} split has images {format_shape_hwc(part.input_shape)} (HxWxC) "
                    f"but train has {format_shape_hwc(self.train.input_shape)}; resize them to "
                    "one size (e.g. pass size= and channels= to the reader)"
                )

    def parts(self) -> dict[str, ImageData]:
        """The splits that are present, by name: ``{"train": ..., "val": ..., "test": ...}``."""
        named = {"train": self.train, "val": self.val, "test": self.test}
        return {name: part for name, part in named.items() if part is not None}

    @property
    def class_names(self) -> list[str]:
        """The class names shared by every split."""
        return self.train.class_names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The image shape (C, H, W) shared by every split."""
        return self.train.input_shape
