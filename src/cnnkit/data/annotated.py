"""Annotated image data for the tasks beyond one label per image: localise, segment, detect.

An :class:`AnnotatedData` is one split: uint8 images ``(N, C, H, W)`` of one size plus the
task's targets — one class and box per image (``localize``), a class index per pixel
(``segment``) or many classes and boxes per image (``detect``, padded with label -1). Boxes are
``(x_min, y_min, x_max, y_max)`` in pixels, x to the right, y down, max exclusive. Mask value
255 marks "ignore" pixels. :class:`AnnotatedSplits` holds train / val / test.

Example:
    >>> data = AnnotatedData("localize", images, ["0", "1"], labels=labels, boxes=boxes)
    >>> train, val = data.split(0.1, seed=0)
    >>> train.targets()["boxes"].shape
    torch.Size([..., 4])
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cnnkit.data.dataset import split_indices, subset_index
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

TASKS = ("classify", "localize", "segment", "detect")
IGNORE_INDEX = 255
_ANNOTATED_TASKS = TASKS[1:]


@dataclass
class AnnotatedData:
    """One split of a localise / segment / detect dataset, checked on construction.

    Args:
        task: ``"localize"``, ``"segment"`` or ``"detect"``.
        images: uint8 tensor (N, C, H, W).
        class_names: one name per class (segment: index 0 is the background unless the
            dataset's ``classes.txt`` says otherwise).
        labels: localize int64 (N,) in [0, K); detect int64 (N, M) in [0, K) or -1 (padding).
        boxes: localize float32 (N, 4); detect float32 (N, M, 4); xyxy pixels inside the image
            with ``x_max > x_min`` and ``y_max > y_min`` (detect: only where the label is not -1).
        masks: segment uint8 (N, H, W), values in [0, K) or 255 (ignore).
        ignore: detect bool (N, M), objects not scored (COCO iscrowd, VOC difficult);
            default all False.
        names: file name or generated id per image; default ``"0"``, ``"1"``, ...

    Shape:
        images (N, C, H, W); labels (N,) or (N, M); boxes (N, 4) or (N, M, 4);
        masks (N, H, W); ignore (N, M).

    Raises:
        DataError: an unknown task, a missing or extra target, wrong dtype or shape,
            inconsistent lengths, a box outside the image or of zero size, a label or mask
            value beyond the classes.

    Example:
        >>> data = AnnotatedData("segment", images, ["background", "digit"], masks=masks)
        >>> data.num_classes, data.input_shape
        (2, (1, 96, 96))
    """

    task: str
    images: Tensor
    class_names: list[str]
    labels: Tensor | None = None
    boxes: Tensor | None = None
    masks: Tensor | None = None
    ignore: Tensor | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in _ANNOTATED_TASKS:
            raise DataError(f"task must be one of {list(_ANNOTATED_TASKS)}, got {self.task!r}")
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 \
                or self.images.ndim != 4:
            raise DataError(f"images must be a uint8 tensor (N, C, H, W), got "
                            f"{_describe(self.images)}")
        if len(self.class_names) == 0:
            raise DataError("class_names must name at least one class, got []")
        self.class_names = [str(name) for name in self.class_names]
        n = len(self.images)
        if not self.names:
            self.names = [str(i) for i in range(n)]
        self.names = list(self.names)
        if len(self.names) != n:
            raise DataError(f"names must have one entry per image ({n}), got {len(self.names)}")
        required = {"localize": ("labels", "boxes"), "segment": ("masks",),
                    "detect": ("labels", "boxes")}[self.task]
        for key in ("labels", "boxes", "masks", "ignore"):
            value = getattr(self, key)
            if key in required and value is None:
                raise DataError(f"task {self.task!r} needs {key}, got None")
            allowed = required + (("ignore",) if self.task == "detect" else ())
            if key not in allowed and value is not None:
                raise DataError(f"task {self.task!r} takes no {key}; pass {key}=None")
        if self.task == "localize":
            self._check_localize(n)
        elif self.task == "segment":
            self._check_segment(n)
        else:
            self._check_detect(n)

    def _check_localize(self, n: int) -> None:
        _expect(self.labels, "labels", torch.int64, (n,))
        _expect(self.boxes, "boxes", torch.float32, (n, 4))
        _check_labels(self.labels, self.num_classes)
        _check_boxes(self.boxes, self.images.shape[-2:], self.names)

    def _check_segment(self, n: int) -> None:
        _expect(self.masks, "masks", torch.uint8, (n, *self.images.shape[-2:]))
        bad = (self.masks >= self.num_classes) & (self.masks != IGNORE_INDEX)
        if bool(bad.any()):
            i = int(bad.flatten(1).any(1).nonzero()[0])  # (N, H, W) -> (N, H*W)
            raise DataError(f"mask of image {self.names[i]!r} has value "
                            f"{int(self.masks[i][bad[i]][0])}, but there are only "
                            f"{self.num_classes} classes (values 0..{self.num_classes - 1}, or "
                            f"{IGNORE_INDEX} = ignore); check class_names / classes.txt")

    def _check_detect(self, n: int) -> None:
        if not isinstance(self.labels, Tensor) or self.labels.ndim != 2:
            raise DataError(f"detect labels must be an int64 tensor (N, M), got "
                            f"{_describe(self.labels)}")
        m = self.labels.shape[1]
        _expect(self.labels, "labels", torch.int64, (n, m))
        _expect(self.boxes, "boxes", torch.float32, (n, m, 4))
        if self.ignore is None:
            self.ignore = torch.zeros(n, m, dtype=torch.bool)
        _expect(self.ignore, "ignore", torch.bool, (n, m))
        present = self.labels != -1
        _check_labels(self.labels[present], self.num_classes)
        image_of = torch.arange(n)[:, None].expand(n, m)[present]  # (N, M) -> (P,)
        _check_boxes(self.boxes[present], self.images.shape[-2:],
                     [self.names[int(i)] for i in image_of])

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"AnnotatedData(task={self.task!r}, n={len(self)}, "
                f"input_shape={self.input_shape}, classes={self.num_classes})")

    @property
    def num_classes(self) -> int:
        """Number of classes (segment: including the background)."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def targets(self) -> dict[str, Tensor]:
        """The task's targets: ``{"labels", "boxes"}`` (localize), ``{"masks"}`` (segment) or
        ``{"labels", "boxes", "ignore"}`` (detect)."""
        if self.task == "localize":
            return {"labels": self.labels, "boxes": self.boxes}
        if self.task == "segment":
            return {"masks": self.masks}
        return {"labels": self.labels, "boxes": self.boxes, "ignore": self.ignore}

    def subset(self, indices) -> AnnotatedData:
        """A new AnnotatedData with the images (and targets) at ``indices``.

        Args:
            indices: a sequence, range, slice or int64 tensor of positions in [0, N).

        Raises:
            ValueError: indices that are not one-dimensional.
            IndexError: an index outside [0, N).

        Example:
            >>> first_ten = data.subset(range(10))
        """
        index = subset_index(indices, len(self))

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return AnnotatedData(self.task, self.images[index], list(self.class_names),
                             labels=pick(self.labels), boxes=pick(self.boxes),
                             masks=pick(self.masks), ignore=pick(self.ignore),
                             names=[self.names[int(i)] for i in index])

    def split(self, fraction: float, *, seed: int = 0) -> tuple[AnnotatedData, AnnotatedData]:
        """Split into (rest, held_out) with ``round(fraction * N)`` images held out at random.

        Localisation data keeps each class's share in both parts (as ``ImageData.split``); the
        same seed always gives the same split; both parts keep the original image order.

        Args:
            fraction: share of the images in the second part, in (0, 1).
            seed: seed of the shuffle.

        Raises:
            ValueError: fraction outside (0, 1), or one part would be empty.

        Example:
            >>> train, val = data.split(0.1, seed=0)
        """
        # localisation has one label per image: keep the class balance as ImageData.split does
        stratify = self.task == "localize"
        labels = self.labels if stratify else torch.zeros(len(self), dtype=torch.int64)
        rest, held = split_indices(labels, self.num_classes, fraction, seed=seed,
                                   stratify=stratify)
        return self.subset(rest), self.subset(held)


@dataclass
class AnnotatedSplits:
    """Train, val and (optionally) test splits of one annotated dataset.

    Args:
        train: the training split.
        val: the validation split (or None).
        test: the test split (or None).

    Raises:
        DataError: splits of different tasks, class names or image shapes.

    Example:
        >>> splits = AnnotatedSplits(train, val)
        >>> splits.task, splits.input_shape
        ('localize', (1, 64, 64))
    """

    train: AnnotatedData
    val: AnnotatedData | None = None
    test: AnnotatedData | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.train, AnnotatedData):
            raise DataError(f"train must be an AnnotatedData, got {type(self.train).__name__}")
        for part_name, part in (("val", self.val), ("test", self.test)):
            if part is None:
                continue
            if not isinstance(part, AnnotatedData):
                raise DataError(f"{part_name} must be an AnnotatedData or None, got "
                                f"{type(part).__name__}")
            for attr in ("task", "class_names", "input_shape"):
                if getattr(part, attr) != getattr(self.train, attr):
                    raise DataError(f"{part_name} has {attr} {getattr(part, attr)!r} but train "
                                    f"has {getattr(self.train, attr)!r}; all splits must agree")

    @property
    def task(self) -> str:
        """The task of every split."""
        return self.train.task

    @property
    def class_names(self) -> list[str]:
        """The class names shared by every split."""
        return self.train.class_names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return self.train.input_shape

    def parts(self) -> dict[str, AnnotatedData]:
        """The splits that are present, by name."""
        return {k: v for k, v in (("train", self.train), ("val", self.val),
                                  ("test", self.test)) if v is not None}


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _expect(value, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    if not isinstance(value, Tensor) or value.dtype != dtype or tuple(value.shape) != shape:
        raise DataError(f"{name} must be a {dtype} tensor of shape {shape}, got "
                        f"{_describe(value)}")


def _check_labels(labels: Tensor, num_classes: int) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        raise DataError(f"label {int(labels[bad][0])} is outside [0, {num_classes}); there are "
                        f"{num_classes} class names")


def _check_boxes(boxes: Tensor, size, names: list[str]) -> None:
    """Boxes (P, 4) must satisfy 0 <= x_min < x_max <= W and 0 <= y_min < y_max <= H."""
    h, w = int(size[0]), int(size[1])
    x0, y0, x1, y1 = boxes.unbind(-1)
    ok = torch.isfinite(boxes).all(-1) & (x0 >= 0) & (y0 >= 0) & (x1 <= w) & (y1 <= h) \
        & (x1 > x0) & (y1 > y0)
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0])
        raise DataError(f"box {boxes[i].tolist()!r} of image {names[i]!r} is not inside the "
                        f"{w}x{h} image with x_max > x_min and y_max > y_min (xyxy pixels, max "
                        "exclusive)")


_TASK_WORDS = {"localize": "localisation", "segment": "segmentation", "detect": "detection"}


def with_val_split(train: AnnotatedData, val: AnnotatedData | None, test: AnnotatedData | None,
                   *, val_split: float, seed: int, source) -> AnnotatedSplits:
    """The readers' last step: the splits, holding out a seeded ``val_split`` of ``train`` as
    val when the dataset has no val part of its own (logged, naming ``source``)."""
    if val is None:
        train, val = train.split(val_split, seed=seed)
        logger.info("%s has no val split: held out %d of the training images as val (seed %d)",
                    source, len(val), seed)
    return AnnotatedSplits(train, val, test)


def parts_to_write(data: AnnotatedSplits | AnnotatedData, task: str, writer: str,
                   single: str = "train") -> dict[str, AnnotatedData]:
    """The writers' first step: split name -> data (an ``AnnotatedData`` alone is ``single``).

    Raises:
        ValueError: ``data`` of another task than the writer's format holds.
    """
    if data.task != task:
        raise ValueError(f"{writer} writes {_TASK_WORDS[task]} data, got task {data.task!r}; "
                         "use the writer of that task's format")
    return data.parts() if isinstance(data, AnnotatedSplits) else {single: data}
