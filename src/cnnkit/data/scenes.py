"""Generated scenes of handwritten digits for localisation, segmentation and detection.

Digits are pasted at random integer positions and scales on a black canvas (bilinear
resampling, batched with ``grid_sample``); boxes and masks are computed from the pasted
pixels, so they are exact:

- ``mnist-localize``: one digit per 64×64 image; box = tight bounding box of the digit's
  non-zero pixels, label = the digit.
- ``mnist-segment``: 1–4 digits per 96×96 image; mask = digit class + 1 where the pasted
  digit's pixel is >= :data:`MASK_THRESHOLD`, else 0 (background); class names
  ``["background", "0", ..., "9"]``. Later digits lie on top (the image keeps the brighter
  pixel, the mask the later digit), so a mask pixel is non-zero exactly where the image is
  >= :data:`MASK_THRESHOLD`. Digits are placed as for ``mnist-detect`` (little overlap).
- ``mnist-detect``: 1–5 digits per 96×96 image, which may touch or overlap a little (the
  pasted squares overlap with IoU <= 0.2; a digit that finds no such place after a few tries
  is left out); labels (N, 5) padded with -1, boxes (N, 5, 4).

The digits come from MNIST, found like the named dataset ``mnist`` (``data_dir``, else
``$CNNKIT_DATA``, else the user cache; never downloaded here), or from scikit-learn's 8×8
digits when MNIST is absent (``source="builtin"`` forces them). The splits use disjoint
digits: ``train`` the first 50 000 MNIST training digits, ``val`` the last 10 000, ``test``
the MNIST test digits (8×8 fallback: a fixed 60/20/20 partition of the 1797 digits).
The same name, split, size and seed always give the same scenes. :func:`write_scenes` writes
them in the task's on-disk format (localisation folder, segmentation folder, COCO).

Example:
    >>> splits = open_scenes("mnist-localize", sizes={"train": 1000, "val": 100, "test": 100})
    >>> splits.train.boxes.shape, splits.input_shape
    (torch.Size([1000, 4]), (1, 64, 64))
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.boxes import write_boxes
from cnnkit.data.coco import write_coco
from cnnkit.data.masks import write_masks
from cnnkit.data.named import load_named
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

MASK_THRESHOLD = 128
DIGIT_NAMES = [str(k) for k in range(10)]
SPLITS = ("train", "val", "test")
SOURCES = ("auto", "mnist", "builtin")
# Defaults sized for a 2-core CPU: 8000 scenes are generated in a few seconds (measured
# 2000 96x96 detect scenes in 0.6 s on an idle core) and take about 150 MB as uint8 images and
# masks at 96x96; an epoch over 6000 small images stays short for a small CNN.
DEFAULT_SIZES = {"train": 6000, "val": 1000, "test": 1000}
_MAX_OVERLAP_IOU = 0.2
_PLACEMENT_TRIES = 20
_CHUNK = 1024
# What write_scenes puts in its folder (and removes first with overwrite=True).
WRITTEN_PATHS = ("train", "val", "test", "classes.txt")
# The on-disk format write_scenes uses for each task, in words.
FORMATS = {
    "localize": "localisation folder: SPLIT/labels.csv (filename,label,x_min,y_min,x_max,y_max) "
                "+ PNG images, classes.txt",
    "segment": "segmentation folder: SPLIT/images/*.png + SPLIT/masks/*.png (class index per "
               "pixel), classes.txt",
    "detect": "COCO folder: SPLIT/annotations.json (instances, bbox [x, y, w, h]) + PNG images",
}


@dataclass(frozen=True)
class SceneSpec:
    """How the scenes of one name are made.

    Args:
        task: the task of the scenes (``"localize"``, ``"segment"``, ``"detect"``).
        canvas: height = width of the canvas in pixels.
        min_digits: fewest digits per scene.
        max_digits: most digits per scene.
        min_scale: smallest side, in pixels, of the pasted digit patch (28×28 for MNIST).
        max_scale: largest side of the pasted digit patch.
        sizes: default scenes per split (``open_scenes`` without ``sizes``).
    """

    task: str
    canvas: int
    min_digits: int
    max_digits: int
    min_scale: int
    max_scale: int
    sizes: tuple[tuple[str, int], ...] = tuple(DEFAULT_SIZES.items())


# mnist-localize has one digit per scene, so telling the digit apart needs about as many
# scenes as an MNIST classifier needs digits: 6000 scenes gave 95.5 % test accuracy with the
# recipe's net (20000: 98.0 % val), so its default is 40000 training scenes (bench/RESULTS.md);
# mnist-segment's mask names each digit too: 8000 scenes of 1-4 digits.
SCENES = {
    "mnist-localize": SceneSpec("localize", 64, 1, 1, 20, 44,
                                (("train", 40000), ("val", 1000), ("test", 2000))),
    "mnist-segment": SceneSpec("segment", 96, 1, 4, 24, 40,
                               (("train", 8000), ("val", 1000), ("test", 1000))),
    "mnist-detect": SceneSpec("detect", 96, 1, 5, 20, 36),
}


def default_sizes(name: str) -> dict[str, int]:
    """The scenes per split of ``name`` when none are given (``{"train", "val", "test"}``).

    Raises:
        ValueError: an unknown name.
    """
    if name not in SCENES:
        raise ValueError(f"unknown scene set {name!r}; choose one of {scene_names()}")
    return dict(SCENES[name].sizes)


def scene_names() -> list[str]:
    """Names accepted by :func:`make_scenes` and :func:`open_scenes`."""
    return sorted(SCENES)


def make_scenes(name: str, split: str, n: int, seed: int = 0, *, source: str = "auto",
                data_dir: str | os.PathLike | None = None) -> AnnotatedData:
    """Generate ``n`` scenes of ``name`` from the digits of ``split``.

    Args:
        name: ``"mnist-localize"``, ``"mnist-segment"`` or ``"mnist-detect"``.
        split: ``"train"``, ``"val"`` or ``"test"`` (each draws from its own digits).
        n: number of scenes, >= 1.
        seed: seed of the digits, positions and scales drawn.
        source: ``"auto"`` (MNIST if found, else the 8×8 digits), ``"mnist"`` (error if
            absent) or ``"builtin"`` (the 8×8 digits).
        data_dir: where to look for ``mnist/``; default ``$CNNKIT_DATA`` or the user cache.

    Shape:
        images (n, 1, S, S) with S = 64 (localize) or 96; localize labels (n,), boxes (n, 4);
        segment masks (n, S, S); detect labels (n, M), boxes (n, M, 4), M = most digits.

    Raises:
        ValueError: unknown name, split or source, or n < 1.
        DataError: ``source="mnist"`` and the MNIST files are not found.

    Example:
        >>> data = make_scenes("mnist-segment", "train", 100, seed=1)
        >>> data.masks.shape, data.num_classes
        (torch.Size([100, 96, 96]), 11)
    """
    if name not in SCENES:
        raise ValueError(f"unknown scene set {name!r}; choose one of {scene_names()}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    spec = SCENES[name]
    digits, digit_labels, used = _digits(split, source, data_dir)
    rng = np.random.default_rng([seed, SPLITS.index(split), scene_names().index(name)])
    count = rng.integers(spec.min_digits, spec.max_digits + 1, n)
    slots = spec.max_digits
    scale = rng.integers(spec.min_scale, spec.max_scale + 1, (n, slots))
    chosen = rng.integers(0, len(digits), (n, slots))
    present = _place(rng, scale, count, spec.canvas)  # (n, slots, 2) positions, -1 = absent
    layers_label = np.where(present[..., 0] >= 0, digit_labels[chosen], -1)

    size, patch = spec.canvas, spec.max_scale
    # canvases padded by one patch, so a patch written at any corner fits; cropped at the end
    images = torch.zeros(n, size + patch, size + patch, dtype=torch.uint8)
    masks = torch.zeros(n, size + patch, size + patch, dtype=torch.uint8)
    boxes = torch.zeros(n, slots, 4, dtype=torch.float32)
    offsets = torch.arange(patch)
    for k in range(slots):
        corners = torch.from_numpy(present[:, k])
        placed = torch.nonzero(corners[:, 0] >= 0)[:, 0]
        for start in range(0, len(placed), _CHUNK):
            rows = placed[start:start + _CHUNK]
            x0, y0 = corners[rows, 0], corners[rows, 1]
            pasted = _resample(digits[torch.from_numpy(chosen[:, k])[rows]],
                               torch.from_numpy(scale[:, k])[rows], patch)  # (B, P, P)
            ys = (y0[:, None] + offsets)[:, :, None]  # (B, P, 1) canvas rows
            xs = (x0[:, None] + offsets)[:, None, :]  # (B, 1, P) canvas columns
            pasted = torch.where((ys < size) & (xs < size), pasted, 0)  # drop what leaves
            where = (rows[:, None, None], ys, xs)
            images[where] = torch.maximum(images[where], pasted)
            label = torch.from_numpy(layers_label[:, k])[rows] + 1
            masks[where] = torch.where(pasted >= MASK_THRESHOLD,
                                       label.to(torch.uint8)[:, None, None], masks[where])
            shift = torch.stack([x0, y0, x0, y0], 1).to(torch.float32)  # (B, 4)
            boxes[rows, k] = _tight_boxes(pasted > 0) + shift
    images = images[:, None, :size, :size].contiguous()  # (n, S+P, S+P) -> (n, 1, S, S)
    masks = masks[:, :size, :size].contiguous()
    labels = torch.from_numpy(layers_label)
    names = [f"{name}-{split}-{i:05d}" for i in range(n)]
    logger.debug("%s %s: %d scenes from %s digits (seed %d)", name, split, n, used, seed)
    if spec.task == "localize":
        return AnnotatedData("localize", images, list(DIGIT_NAMES), labels=labels[:, 0],
                             boxes=boxes[:, 0], names=names)
    if spec.task == "segment":
        return AnnotatedData("segment", images, ["background", *DIGIT_NAMES], masks=masks,
                             names=names)
    return AnnotatedData("detect", images, list(DIGIT_NAMES), labels=labels, boxes=boxes,
                         names=names)


def open_scenes(name: str, *, seed: int = 0, sizes: dict[str, int] | None = None,
                source: str = "auto",
                data_dir: str | os.PathLike | None = None) -> AnnotatedSplits:
    """Generate the train, val and test splits of ``name``.

    Args:
        name: ``"mnist-localize"``, ``"mnist-segment"`` or ``"mnist-detect"``.
        seed: seed of every split (each split also mixes in its own name).
        sizes: scenes per split, keys ``"train"``, ``"val"``, ``"test"``; missing keys take
            :func:`default_sizes` (6000 / 1000 / 1000; mnist-localize 40000 / 1000 / 2000,
            mnist-segment 8000 / 1000 / 1000); a
            size of 0 leaves val or test out.
        source: see :func:`make_scenes`.
        data_dir: see :func:`make_scenes`.

    Raises:
        ValueError: unknown name or split key, a negative size, or no training scenes.
        DataError: ``source="mnist"`` and MNIST is not found.

    Example:
        >>> splits = open_scenes("mnist-detect", sizes={"train": 200, "val": 50, "test": 0})
        >>> splits.test is None
        True
    """
    sizes = dict(sizes or {})
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise ValueError(f"sizes has unknown split(s) {unknown!r}; use {list(SPLITS)}")
    sizes = {**default_sizes(name), **sizes}
    for split, size in sizes.items():
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"sizes[{split!r}] must be an int >= 0, got {size!r}")
    if sizes["train"] == 0:
        raise ValueError("sizes['train'] must be >= 1, got 0")
    parts = {split: make_scenes(name, split, sizes[split], seed, source=source,
                                data_dir=data_dir) if sizes[split] else None
             for split in SPLITS}
    return AnnotatedSplits(parts["train"], parts["val"], parts["test"])


def _place(rng: np.random.Generator, scale: np.ndarray, count: np.ndarray,
           canvas: int) -> np.ndarray:
    """Top-left corners (n, slots, 2) as (x, y); -1 where a slot has no digit.

    Slot k of a scene is used when k < count; it takes the first of a few random positions
    whose square overlaps every earlier square with IoU <= _MAX_OVERLAP_IOU (none: dropped).
    """
    n, slots = scale.shape
    corners = np.full((n, slots, 2), -1, dtype=np.int64)
    rows = np.arange(n)
    for k in range(slots):
        s = scale[:, k]
        tries = (rng.random((n, _PLACEMENT_TRIES, 2)) * (canvas - s + 1)[:, None, None])
        tries = tries.astype(np.int64)  # (n, T, 2) candidate corners
        ok = np.ones((n, _PLACEMENT_TRIES), dtype=bool)
        for j in range(k):
            placed = corners[:, j, 0] >= 0
            iou = _square_iou(tries, s[:, None], corners[:, j][:, None], scale[:, j][:, None])
            ok &= ~placed[:, None] | (iou <= _MAX_OVERLAP_IOU)
        found = ok.any(1) & (k < count)
        first = ok.argmax(1)
        corners[found, k] = tries[rows[found], first[found]]
    return corners


def _square_iou(a: np.ndarray, sa: np.ndarray, b: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """IoU of squares with corners a (n, T, 2), sides sa (n, 1) and corners b (n, 1, 2)."""
    lo = np.maximum(a, b)
    hi = np.minimum(a + sa[..., None], b + sb[..., None])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    return inter / (sa**2 + sb**2 - inter)


def _resample(digits: torch.Tensor, scale: torch.Tensor, patch: int) -> torch.Tensor:
    """Each digit (B, h, w) resized bilinearly to scale×scale in the top-left of a patch.

    With ``align_corners=False``, patch pixel j (normalised xn = (2j+1)/P - 1) reads the digit
    at xi = xn * P/s + P/s - 1 = (2j+1)/s - 1, so the digit's extent [0, w) lands on [0, s);
    the rest of the patch reads zeros.

    Shape:
        digits (B, h, w) uint8, scale (B,) with every scale <= patch -> (B, patch, patch) uint8.
    """
    b = len(digits)
    centres = (2 * torch.arange(patch, dtype=torch.float32) + 1)[None]  # (1, P)
    along = centres / scale.to(torch.float32)[:, None] - 1  # (B, P) normalised input coords
    grid = torch.stack([along[:, None, :].expand(b, patch, patch),   # x varies along columns
                        along[:, :, None].expand(b, patch, patch)], -1)  # (B, P, P, 2)
    source = digits.to(torch.float32)[:, None]  # (B, h, w) -> (B, 1, h, w)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)[:, 0]  # (B, 1, P, P) -> (B, P, P)
    return out.round().clamp(0, 255).to(torch.uint8)


def _tight_boxes(on: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes (B, 4) of the True pixels of on (B, H, W), max exclusive; zeros if none."""
    _, h, w = on.shape
    cols, rows = on.any(1), on.any(2)  # (B, H, W) -> (B, W) and (B, H)
    xs, ys = torch.arange(w), torch.arange(h)
    big = max(h, w) + 1
    x_min = torch.where(cols, xs, big).min(1).values
    x_max = torch.where(cols, xs, -1).max(1).values + 1
    y_min = torch.where(rows, ys, big).min(1).values
    y_max = torch.where(rows, ys, -1).max(1).values + 1
    boxes = torch.stack([x_min, y_min, x_max, y_max], 1).to(torch.float32)
    boxes[~cols.any(1)] = 0.0
    return boxes


def _digits(split: str, source: str, data_dir) -> tuple[torch.Tensor, np.ndarray, str]:
    """Digit images (D, h, w) uint8, their labels (D,) and the source used, for one split."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
    root = None if data_dir is None else str(os.fspath(data_dir))
    if source != "builtin":
        try:
            images, labels = _mnist(split, root, os.environ.get("CNNKIT_DATA"))
            return images, labels, "mnist"
        except DataError as exc:
            if source == "mnist":
                raise
            logger.warning("MNIST not found (%s); making scenes from scikit-learn's 8x8 digits "
                           "instead", str(exc).splitlines()[0])
    images, labels = _builtin(split)
    return images, labels, "builtin"


@functools.lru_cache(maxsize=4)
def _mnist(split: str, data_dir: str | None, env: str | None) -> tuple[torch.Tensor, np.ndarray]:
    """MNIST digits of one split (``env`` only keys the cache on ``$CNNKIT_DATA``)."""
    splits = load_named("mnist", data_dir=data_dir, download=False, progress=False)
    part = splits.test if split == "test" else splits.train
    images, labels = part.images[:, 0], part.labels.numpy()  # (N, 1, 28, 28) -> (N, 28, 28)
    if split != "test":
        cut = len(images) * 5 // 6
        rows = slice(0, cut) if split == "train" else slice(cut, None)
        images, labels = images[rows], labels[rows]
    logger.info("scenes: using %d MNIST %s digits for the %s split", len(images),
                "test" if split == "test" else "training", split)
    return images.contiguous(), labels


@functools.lru_cache(maxsize=4)
def _builtin(split: str) -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's 8×8 digits, partitioned 60/20/20 by position (fixed, disjoint)."""
    from sklearn.datasets import load_digits  # import cost: scikit-learn (~1 s)

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    part = {"train": 0, "val": 1, "test": 2}[split]
    bucket = np.arange(len(pixels)) % 5
    rows = np.isin(bucket, [0, 1, 2]) if part == 0 else bucket == part + 2
    logger.info("scenes: using %d of scikit-learn's 8x8 digits for the %s split",
                int(rows.sum()), split)
    return torch.from_numpy(np.ascontiguousarray(pixels[rows])), digits.target[rows].astype(
        np.int64)


def write_scenes(name: str, folder, seed: int = 0, *, sizes: dict[str, int] | None = None,
                 source: str = "auto", data_dir: str | os.PathLike | None = None,
                 overwrite: bool = False) -> Path:
    """Generate the splits of ``name`` and write them in the task's on-disk format.

    - ``mnist-localize``: a localisation folder (``train/``, ``val/``, ``test/`` with PNG
      files and ``labels.csv``; ``classes.txt``), see :mod:`cnnkit.data.boxes`.
    - ``mnist-segment``: a segmentation folder (``classes.txt``; each split with ``images/``
      and ``masks/`` PNGs of the same stems), see :mod:`cnnkit.data.masks`.
    - ``mnist-detect``: a COCO folder (each split with PNG files and ``annotations.json``,
      category ids 1..10 for the digits 0..9), see :mod:`cnnkit.data.coco`.

    Reading the folder back (``cnnkit.data.open_annotated.open_annotated(folder)``) gives the
    same images and targets (detection: the same objects per image; the padding may be
    narrower). A split of size 0 is not written.

    Args:
        name: a scene set of :func:`scene_names`.
        folder: where to write (created if needed); it must be empty unless ``overwrite``.
        seed, sizes, source, data_dir: as for :func:`open_scenes`.
        overwrite: write into a non-empty ``folder``, first removing the paths the format
            writes there (``train/``, ``val/``, ``test/``, ``classes.txt``); other files stay.

    Returns:
        ``folder`` as a Path.

    Raises:
        ValueError: unknown name, ``folder`` is a file, or a non-empty ``folder`` without
            ``overwrite``; and the errors of :func:`open_scenes`.
        DataError: ``source="mnist"`` and MNIST is not found.

    Example:
        >>> write_scenes("mnist-segment", "data/seg", sizes={"train": 100, "val": 20, "test": 20})
        PosixPath('data/seg')
    """
    if name not in SCENES:
        raise ValueError(f"unknown scene set {name!r}; choose one of {scene_names()}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} is a file; give a folder to write the "
                         f"{name!r} scenes into")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"folder {str(folder)!r} is not empty; give an empty or new folder, or "
                         f"pass overwrite=True (cnnkit data make --overwrite) to replace its "
                         f"{', '.join(WRITTEN_PATHS)}")
    splits = open_scenes(name, seed=seed, sizes=sizes, source=source, data_dir=data_dir)
    if overwrite:
        for entry in WRITTEN_PATHS:
            path = folder / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            logger.info("removed %s before writing %s", path, name)
    writer = {"localize": write_boxes, "segment": write_masks, "detect": write_coco}
    return writer[SCENES[name].task](splits, folder)
