"""``open_data``: turn a ``--data`` string into train/val/test splits.

Accepted specs, tried in this order:

==========================================  ==================================================
spec                                        read by
==========================================  ==================================================
an existing folder with ``*-ubyte[.gz]``    ``load_idx`` (train, and test when present)
a CIFAR folder or ``.tar.gz``/``.tgz``      ``load_cifar`` (train and test)
a folder with ``train/`` + ``val/``/``test/``  ``load_image_folder_splits``
a folder of class folders                   ``load_image_folder``
``file.npz``                                ``load_npz`` (one set, or x_train/x_val/x_test)
``images.npy`` (+ ``labels.npy`` beside it)  ``load_npy``; or ``"x.npy,y.npy"``
``file.csv``                                ``load_csv`` (path and label columns)
``digits``, ``shapes``                      ``load_builtin``
``mnist``, ``fashion-mnist``, ``cifar10``,  ``load_named`` (data dir, download)
``cifar100``
==========================================  ==================================================
"""
from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnkit._checks import check_probability, format_shape_hwc, standardize_tuple
from cnnkit.data.arrays import load_npy, load_npz
from cnnkit.data.builtin import builtin_names, load_builtin
from cnnkit.data.cifar import LAYOUTS as CIFAR_LAYOUTS
from cnnkit.data.cifar import load_cifar
from cnnkit.data.csv_source import load_csv
from cnnkit.data.dataset import DataSplits, ImageData, default_class_names
from cnnkit.data.folder import (
    RESIZE_MODES, load_image_folder, load_image_folder_splits, split_folders,
)
from cnnkit.data.idx import find_idx_pair, load_idx
from cnnkit.data.named import is_named_dataset, load_named, named_datasets
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_CHUNK = 4096  # images converted at a time, bounding the float copy
# How a labels .npy is named beside its images .npy: images.npy -> labels.npy, x_train -> y_train.
_NPY_LABEL_NAMES = (("images", "labels"), ("x", "y"), ("X", "y"), ("data", "labels"))


def open_data(
    spec: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    val_split: float = 0.0,
    seed: int = 0,
    size=None,
    channels: int | None = None,
    resize: str = "crop",
    strict: bool = False,
    download: bool = True,
    progress: bool = True,
    allow_label_gaps: bool = False,
) -> DataSplits:
    """Resolve a ``--data`` spec (path or name, see the module table) to DataSplits.

    Args:
        spec: a file or folder path, ``"x.npy,y.npy"``, a built-in name or a named dataset.
        data_dir: where named datasets live (default ``$CNNKIT_DATA`` or the user cache).
        val_split: share of train held out as a stratified, seeded validation set, in [0, 1);
            used only when the source has no validation split of its own.
        seed: seed of the validation split (and of the built-in train/test split).
        size, channels, resize, strict: the image size (H, W) (or an int), channels (1 or
            3) and resize mode wanted, see ``load_image_folder``; image files are decoded to
            them, in-memory sources (IDX, CIFAR, arrays, named, built-in) are converted with
            :func:`resize_images` and :func:`convert_channels` (e.g. MNIST at 32×32 for LeNet-5).
        download: let named datasets download missing files.
        progress: show download progress bars.
        allow_label_gaps: integer labels without names (IDX, arrays, CSV) must be 0..K-1
            without gaps (judged over all splits); True accepts a set such as {0, 1, 2, 200} as
            a K = max label + 1 model whose unused classes never appear (nothing is remapped).
            Named datasets always refuse labels outside their classes.

    Shape:
        Each split's images are uint8 (N, C, H, W); all splits share (C, H, W) and classes.

    Raises:
        DataError: an unknown spec (the message lists what is accepted and the closest name),
            an unsupported file type, or anything a reader rejects.
        ValueError: ``val_split`` outside [0, 1), or a bad ``size``/``channels``/``resize``.

    Example:
        >>> splits = open_data("mnist", data_dir="../shared/data", val_split=0.1)
        >>> len(splits.train), len(splits.val), len(splits.test)
        (54000, 6000, 10000)
    """
    val_split = check_probability(val_split, "val_split")
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"data must be a path or a dataset name (str), got {spec!r}")
    image_options = {"size": size, "channels": channels, "resize": resize, "strict": strict}
    splits, kind = _resolve(str(spec), data_dir=data_dir, seed=seed, image_options=image_options,
                            download=download, progress=progress,
                            allow_label_gaps=allow_label_gaps)
    if kind != "images":
        splits = _conform(splits, size=size, channels=channels, resize=resize)
    if val_split > 0:
        splits = _carve_validation(splits, val_split, seed=seed)
    _log_found(spec, kind, splits)
    return splits


def _resolve(spec: str, *, data_dir, seed: int, image_options: dict, download: bool,
             progress: bool, allow_label_gaps: bool) -> tuple[DataSplits, str]:
    """The splits of ``spec`` and the kind of source: ``"images"`` (decoded files) or another."""
    if "," in spec and all(part.strip().endswith(".npy") for part in spec.split(",")):
        images_path, labels_path = (part.strip() for part in spec.split(",", 1))
        return (DataSplits(train=load_npy(images_path, labels_path,
                                          allow_label_gaps=allow_label_gaps)), "arrays")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _open_folder(path, image_options, allow_label_gaps)
    if path.is_file():
        return _open_file(path, image_options, allow_label_gaps)
    if spec in builtin_names():
        return load_builtin(spec, seed=seed), "builtin"
    if is_named_dataset(spec):
        return load_named(spec, data_dir=data_dir, download=download, progress=progress), "named"
    raise DataError(_unknown_spec_message(spec))


def image_folder_root(spec) -> Path | None:
    """The folder ``spec`` names if it is a folder of images (class sub-folders, optionally
    under train/ and val/ or test/), else None (IDX or CIFAR files, a file, a dataset name).

    The training pipeline streams such folders from disk when they are too large to decode
    into memory (``cnnkit.data.stream``).
    """
    path = Path(str(spec)).expanduser()
    if not path.is_dir():
        return None
    return path if _folder_kind(path)[0] == "images" else None


def _folder_kind(path: Path) -> tuple[str, Path]:
    """``("idx" | "cifar" | "images", the path to open)`` for a data folder."""
    if any("ubyte" in p.name for p in path.iterdir() if p.is_file()):
        return "idx", path
    if _is_cifar_folder(path):
        return "cifar", path
    archives = [p for p in path.iterdir()
                if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES) and "cifar" in p.name.lower()]
    if len(archives) == 1:
        return "cifar", archives[0]
    return "images", path


def _open_folder(path: Path, image_options: dict,
                 allow_label_gaps: bool) -> tuple[DataSplits, str]:
    kind, target = _folder_kind(path)
    if kind == "idx":
        return _open_idx_folder(target, allow_label_gaps), "idx"
    if kind == "cifar":
        return _open_cifar(target), "cifar"
    if split_folders(path):
        return load_image_folder_splits(path, **image_options), "images"
    return DataSplits(train=load_image_folder(path, **image_options)), "images"


def _open_file(path: Path, image_options: dict,
               allow_label_gaps: bool) -> tuple[DataSplits, str]:
    name = path.name.lower()
    if name.endswith(".npz"):
        loaded = load_npz(path, allow_label_gaps=allow_label_gaps)
        return (loaded if isinstance(loaded, DataSplits) else DataSplits(train=loaded)), "arrays"
    if name.endswith(".npy"):
        return (DataSplits(train=load_npy(path, _npy_labels_path(path),
                                          allow_label_gaps=allow_label_gaps)), "arrays")
    if name.endswith(".csv"):
        return (DataSplits(train=load_csv(path, **image_options,
                                          allow_label_gaps=allow_label_gaps)), "images")
    if name.endswith(ARCHIVE_SUFFIXES):
        return _open_cifar(path), "cifar"
    if "ubyte" in name:
        return _open_idx_folder(path.parent, allow_label_gaps), "idx"
    raise DataError(
        f"data file {str(path)!r} has a type cnnkit cannot read; give a .npz, .npy, .csv or "
        "CIFAR .tar.gz file, or a folder (IDX files, CIFAR batches, or class sub-folders of images)"
    )


def _open_idx_folder(path: Path, allow_label_gaps: bool) -> DataSplits:
    train_files = find_idx_pair(path, "train")
    try:
        test_files = find_idx_pair(path, "test")
    except DataError:
        logger.info("no test IDX files in %s: only a train split", path)
        return DataSplits(train=load_idx(*train_files, allow_label_gaps=allow_label_gaps))
    # Gaps are judged on both splits together: a small test file may lack a class train has.
    train = load_idx(*train_files, allow_label_gaps=True)
    test = load_idx(*test_files, allow_label_gaps=True)
    names = default_class_names(torch.cat([train.labels, test.labels]), str(path),
                                allow_label_gaps=allow_label_gaps)
    train = ImageData(train.images, train.labels, names, source=train.source)
    test = ImageData(test.images, test.labels, names, source=test.source)
    return DataSplits(train=train, test=test)


def _is_cifar_folder(path: Path) -> bool:
    for layout in CIFAR_LAYOUTS:
        if path.name == layout.folder or (path / layout.folder).is_dir():
            return True
        if any((path / name).is_file() for name in layout.train[:1] + layout.meta):
            return True
    return False


def _open_cifar(path: Path) -> DataSplits:
    return DataSplits(train=load_cifar(path, split="train"), test=load_cifar(path, split="test"))


def _npy_labels_path(images_path: Path) -> Path:
    """``images.npy`` -> ``labels.npy``, ``x_train.npy`` -> ``y_train.npy`` (must exist)."""
    stem = images_path.stem
    tried = []
    for images_word, labels_word in _NPY_LABEL_NAMES:
        candidate = stem.replace(images_word, labels_word, 1)
        if candidate == stem:
            continue
        labels_path = images_path.with_name(candidate + ".npy")
        if labels_path.is_file():
            return labels_path
        tried.append(labels_path.name)
    raise DataError(
        f"no labels file beside {images_path}: looked for {sorted(set(tried)) or 'none'}; name it "
        "like the images file with 'images' -> 'labels' or 'x' -> 'y', or give both as "
        "'images.npy,labels.npy'"
    )


def _conform(splits: DataSplits, *, size, channels, resize: str) -> DataSplits:
    """Resize and convert the in-memory images of every split to ``size`` and ``channels``."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None (keep), 1 (grayscale) or 3 (RGB), "
                         f"got {channels!r}")
    target = None if size is None else standardize_tuple(size, 2, "size")
    c, h, w = splits.input_shape
    if (channels is None or channels == c) and (target is None or target == (h, w)):
        return splits
    logger.info("converting images from %s to %s (HxWxC, resize=%r)", format_shape_hwc((c, h, w)),
                format_shape_hwc((channels or c, *(target or (h, w)))), resize)
    parts = {}
    for name, part in splits.parts().items():
        images = convert_channels(part.images, channels) if channels else part.images
        if target is not None:
            images = resize_images(images, target, resize=resize)
        parts[name] = ImageData(images, part.labels, part.class_names, source=part.source,
                                skipped=part.skipped)
    return DataSplits(**parts)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale <-> RGB for uint8 images, as Pillow's ``convert("L")`` / ``convert("RGB")``.

    RGB -> gray uses ITU-R 601-2 luma, ``L = 0.299 R + 0.587 G + 0.114 B`` (rounded); gray ->
    RGB repeats the channel.

    Shape:
        ``(N, C, H, W)`` -> ``(N, channels, H, W)``.

    Raises:
        ValueError: a conversion other than 1 <-> 3 channels.
    """
    c = images.shape[1]
    if c == channels:
        return images
    if (c, channels) == (1, 3):
        return images.expand(-1, 3, -1, -1).contiguous()  # (N, 1, H, W) -> (N, 3, H, W)
    if (c, channels) == (3, 1):
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # (3,) -> (1, 3, 1, 1)
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        for i in range(0, images.shape[0], _CHUNK):
            chunk = images[i:i + _CHUNK].float()
            luma = (chunk * weights).sum(dim=1, keepdim=True)  # (n, 3, H, W) -> (n, 1, H, W)
            out[i:i + _CHUNK] = luma.round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise ValueError(f"channels={channels!r} cannot be made from {c}-channel images; "
                     "use 1 (grayscale) or 3 (RGB)")


def resize_images(images: torch.Tensor, size: tuple[int, int], *,
                  resize: str = "crop") -> torch.Tensor:
    """Resize uint8 images with bilinear, antialiased interpolation, like the folder reader.

    ``"stretch"`` scales to H×W ignoring the aspect ratio; ``"crop"`` scales the shorter side
    to the target and centre-crops the rest; ``"pad"`` scales the longer side to the target and
    centres the image on black.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, size[0], size[1])``.
    """
    n, c, h, w = images.shape
    th, tw = size
    if resize == "stretch":
        scaled = (th, tw)
    else:
        pick = max if resize == "crop" else min
        scale = pick(th / h, tw / w)
        scaled = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = torch.zeros((n, c, th, tw), dtype=torch.uint8)
    # Offsets of the centred window: into the output (pad) or into the scaled image (crop).
    dy, dx = abs(th - scaled[0]) // 2, abs(tw - scaled[1]) // 2
    for i in range(0, n, _CHUNK):
        chunk = images[i:i + _CHUNK].float()
        if scaled != (h, w):
            chunk = F.interpolate(chunk, size=scaled, mode="bilinear", antialias=True,
                                  align_corners=False)
        chunk = chunk.round_().clamp_(0, 255).to(torch.uint8)
        if resize == "pad":
            out[i:i + _CHUNK, :, dy:dy + scaled[0], dx:dx + scaled[1]] = chunk
        else:
            out[i:i + _CHUNK] = chunk[:, :, dy:dy + th, dx:dx + tw]
    return out


def _carve_validation(splits: DataSplits, val_split: float, *, seed: int) -> DataSplits:
    if splits.val is not None:
        logger.warning("the data has its own validation split (%d images): val_split=%s is not "
                       "used", len(splits.val), val_split)
        return splits
    train, val = splits.train.split(val_split, seed=seed, stratify=True)
    return DataSplits(train=train, val=val, test=splits.test)


def _unknown_spec_message(spec: str) -> str:
    names = builtin_names() + named_datasets()
    close = difflib.get_close_matches(spec.lower(), names, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"--data {spec!r} is not an existing file or folder, nor a dataset name.{hint} Accepted: "
        f"a built-in dataset {builtin_names()!r}, a named dataset {named_datasets()!r} "
        "(downloaded into --data-dir / $CNNKIT_DATA), a folder (IDX files, CIFAR batches, image "
        "class folders, or train/ + val/ or test/), a CIFAR .tar.gz, a .npz or .npy file "
        "('x.npy,y.npy'), or a .csv of image paths and labels."
    )


def _log_found(spec, kind: str, splits: DataSplits) -> None:
    for name, part in splits.parts().items():
        logger.info("%s (%s) %s: %d images %s (HxWxC), %d classes", spec, kind, name, len(part),
                    format_shape_hwc(part.input_shape), part.num_classes)
    names = splits.class_names
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    logger.info("%s classes: %s", spec, shown)
