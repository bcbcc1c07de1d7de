"""Reader and writer of localisation folders: one class and one bounding box per image.

Layout (``train/`` and ``val/``, optionally ``test/``; without ``val/`` a seeded split of
``train/`` is held out)::

    ROOT/
      train/  labels.csv  a.png  b.png ...
      val/    labels.csv  ...

``labels.csv`` has the header ``filename,label,x_min,y_min,x_max,y_max``: the image file
(relative to the split folder), its class name and its box in pixels (x to the right, y down,
max exclusive; ``0 <= x_min < x_max <= width``, likewise for y). Class names are the lines of
an optional ``ROOT/classes.txt`` (one name per line, index order), else the sorted labels of
the training split; every row must use one of them. Images are decoded by
:mod:`cnnkit.data.folder` (its size limits and channel rules); images whose size differs from
``size`` (default: the first training image's) are stretched to it, with their boxes scaled.

Example:
    >>> write_boxes(open_scenes("mnist-localize", sizes={"train": 50, "val": 10, "test": 0}),
    ...             "data/loc")
    >>> read_boxes("data/loc").train.boxes.shape
    torch.Size([50, 4])
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits, parts_to_write, with_val_split
from cnnkit.data.folder import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, decode_image, split_folders
from cnnkit.errors import DataError

LABELS_CSV = "labels.csv"
CLASSES_TXT = "classes.txt"
BOX_HEADER = ("filename", "label", "x_min", "y_min", "x_max", "y_max")


def read_box_split(folder, *, class_names: list[str] | None = None, size=None,
                   channels: int | None = None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedData:
    """Read one split folder (images + ``labels.csv``) as localisation data.

    Args:
        folder: the split folder.
        class_names: the classes (e.g. the training split's); None: the sorted labels found.
        size: (H, W) to bring every image to (boxes scaled); None: the first image's size.
        channels: 1 or 3; None: 3 if any image is in colour, else 1.
        max_pixels: refuse images with more pixels than this (see :mod:`cnnkit.data.folder`).

    Shape:
        images (N, C, H, W) uint8, labels (N,) int64, boxes (N, 4) float32 xyxy pixels.

    Raises:
        DataError: no ``labels.csv``, a wrong header, a row with a missing or unreadable file,
            a file outside the folder or listed twice, a label not in ``class_names``, a value
            that is not a number, a box outside the image or with ``x_max <= x_min`` (or
            ``y_max <= y_min``); each names the file and line.

    Example:
        >>> val = read_box_split("data/loc/val", class_names=train.class_names, size=(64, 64))
    """
    folder = Path(folder)
    rows = _read_rows(folder / LABELS_CSV)
    if class_names is None:
        class_names = sorted({row[1] for _, row in rows})
    index = {name: k for k, name in enumerate(class_names)}
    arrays, labels, boxes, names = [], [], [], []
    for line, (filename, label, *numbers) in rows:
        where = f"{folder / LABELS_CSV}, line {line}"
        if label not in index:
            raise DataError(f"{where}: unknown label {label!r}; the classes are "
                            f"{list(class_names)!r} (from classes.txt or the training split)")
        path = _image_path(folder, filename, where)
        box = _parse_box(numbers, where)
        pixels = decode_image(path, channels=channels, max_pixels=max_pixels)
        _, h, w = pixels.shape
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise DataError(f"{where}: box {box!r} of {filename!r} is not inside the {w}x{h} "
                            "image with x_max > x_min and y_max > y_min (pixels, max exclusive)")
        if size is None:
            size = (h, w)
        if (h, w) != tuple(size):
            pixels = _stretch(pixels, size)
            sx, sy = size[1] / w, size[0] / h
            box = [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
        arrays.append(pixels)
        labels.append(index[label])
        boxes.append(box)
        names.append(filename)
    if channels is None and len({a.shape[0] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    images = torch.from_numpy(np.stack(arrays))  # N x (C, H, W) -> (N, C, H, W)
    return AnnotatedData("localize", images, list(class_names),
                         labels=torch.tensor(labels, dtype=torch.int64),
                         boxes=torch.tensor(boxes, dtype=torch.float32), names=names)


def read_boxes(root, *, val_split: float = 0.1, seed: int = 0, size=None,
               channels: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedSplits:
    """Read a localisation folder: ``train/`` and ``val/`` (optionally ``test/``).

    Without a ``val/`` (only ``train/``, or ``labels.csv`` directly in ``root``), a seeded
    ``val_split`` share of the training images is held out as val. ``root/classes.txt``, if
    present, gives the class names in index order.

    Args:
        root: the dataset folder.
        val_split: share held out as val when there is no ``val/``, in (0, 1).
        seed: seed of that split.
        size: (H, W) of every image; None: the first training image's size.
        channels: 1 or 3; None: 3 if any training image is in colour, else 1.
        max_pixels: refuse images with more pixels than this.

    Raises:
        DataError: no ``labels.csv`` where expected, an empty or repetitive ``classes.txt``,
            or any error of :func:`read_box_split`.

    Example:
        >>> splits = read_boxes("data/loc")
        >>> splits.task, splits.class_names[:3]
        ('localize', ['cat', 'dog', 'fox'])
    """
    root = Path(root)
    folders = split_folders(root)
    if not folders:
        folders = {"train": root / "train" if (root / "train").is_dir() else root}
    train = read_box_split(folders["train"], class_names=_read_classes(root), size=size,
                           channels=channels, max_pixels=max_pixels)
    options = dict(class_names=train.class_names, size=train.input_shape[1:],
                   channels=train.input_shape[0], max_pixels=max_pixels)
    val = read_box_split(folders["val"], **options) if "val" in folders else None
    test = read_box_split(folders["test"], **options) if "test" in folders else None
    return with_val_split(train, val, test, val_split=val_split, seed=seed,
                          source=root)


def write_boxes(data: AnnotatedSplits | AnnotatedData, folder) -> Path:
    """Write localisation data as PNG files and ``labels.csv`` (the layout of :func:`read_boxes`).

    An :class:`AnnotatedSplits` gives ``folder/train``, ``folder/val`` and ``folder/test``; an
    :class:`AnnotatedData` is written into ``folder`` itself. ``folder/classes.txt`` keeps the
    class names (also those no image uses). File names are each image's name (its last path
    part) with ``.png`` added unless it already ends in ``.png``.

    Args:
        data: localisation data.
        folder: where to write (created if needed).

    Raises:
        ValueError: data that is not of the ``"localize"`` task, or two images with one name.

    Example:
        >>> write_boxes(splits, "data/loc")
        PosixPath('data/loc')
    """
    folder = Path(folder)
    parts = parts_to_write(data, "localize", "write_boxes", single="")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLASSES_TXT).write_text("".join(f"{name}\n" for name in data.class_names))
    for split, part in parts.items():
        target = folder / split if split else folder
        target.mkdir(parents=True, exist_ok=True)
        filenames = [_png_name(name) for name in part.names]
        if len(set(filenames)) != len(filenames):
            raise ValueError(f"the names of {split or 'the'} images are not unique as files")
        with open(target / LABELS_CSV, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(BOX_HEADER)
            for filename, image, label, box in zip(filenames, part.images, part.labels,
                                                   part.boxes):
                pixels = image.numpy()
                if pixels.shape[0] == 1:
                    Image.fromarray(pixels[0], mode="L").save(target / filename)
                else:
                    # (C, H, W) -> (H, W, C)
                    Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB").save(target / filename)
                writer.writerow([filename, part.class_names[int(label)],
                                 *(f"{float(v):g}" for v in box)])
    return folder


def _read_classes(root: Path) -> list[str] | None:
    """The names in ``root/classes.txt`` (one per line, blank lines ignored), or None."""
    path = root / CLASSES_TXT
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path} must list distinct class names, one per line, got {names!r}")
    return names


def _png_name(name: str) -> str:
    base = Path(name).name or "image"
    return base if base.lower().endswith(".png") else base + ".png"


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The data rows of a labels.csv with their line numbers (the header is line 1)."""
    if not path.is_file():
        raise DataError(f"{path} not found: a localisation split folder needs a {LABELS_CSV} "
                        f"with the header {','.join(BOX_HEADER)}")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        header = None if header is None else [cell.strip() for cell in header]
        if header != list(BOX_HEADER):
            raise DataError(f"{path}: the header must be {','.join(BOX_HEADER)!r}, got "
                            f"{','.join(header or [])!r}")
        rows = []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(BOX_HEADER):
                raise DataError(f"{path}, line {reader.line_num}: expected {len(BOX_HEADER)} "
                                f"values ({','.join(BOX_HEADER)}), got {len(row)}: {row!r}")
            rows.append((reader.line_num, [cell.strip() for cell in row]))
    if not rows:
        raise DataError(f"{path} lists no images; add one row per image after the header")
    return rows


def _image_path(folder: Path, filename: str, where: str) -> Path:
    path = folder / filename
    if not path.resolve().is_relative_to(folder.resolve()):
        raise DataError(f"{where}: {filename!r} points outside {folder}; name files relative "
                        "to the split folder")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DataError(f"{where}: {filename!r} is not an image file (expected one of "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
    if not path.is_file():
        raise DataError(f"{where}: image file {filename!r} not found in {folder}")
    return path


def _parse_box(numbers: list[str], where: str) -> list[float]:
    try:
        box = [float(v) for v in numbers]
    except ValueError:
        raise DataError(f"{where}: x_min,y_min,x_max,y_max must be numbers, got "
                        f"{','.join(numbers)!r}") from None
    if not all(np.isfinite(box)):
        raise DataError(f"{where}: box values must be finite, got {','.join(numbers)!r}")
    return box


def _stretch(pixels: np.ndarray, size) -> np.ndarray:
    """Resize a uint8 (C, H, W) array to (C, *size) bilinearly (Pillow), ignoring the aspect."""
    h, w = int(size[0]), int(size[1])
    channels = [np.asarray(Image.fromarray(c).resize((w, h), Image.Resampling.BILINEAR))
                for c in pixels]
    return np.stack(channels)  # C x (H, W) -> (C, H, W)
