"""Build an ImageData from numpy arrays or tensors, and read ``.npz`` / ``.npy`` files.

Accepted image layouts: N×H×W (grayscale), N×H×W×C (channels last, as numpy/Keras/PIL store
images) and N×C×H×W (channels first, as PyTorch does). ``layout="auto"`` looks at the 2nd and
the last dimension: the one that is 1 or 3 (grayscale, RGB) is the channel axis, else the one
that is 4 (RGBA); on a tie channels-first wins, and when neither fits it asks for ``layout=``.
So (N, 28, 28, 3) is channels-last and (N, 3, 32, 32) channels-first. A 4-channel image is
taken as RGBA: the alpha channel is dropped with a logged warning.

Pixel values: uint8 as is; other integers must lie in 0..255; floats in [0, 1] are scaled by
255, floats in [0, 255] are rounded; anything else is an error (normalised data cannot be
turned back into pixels without its mean and std).

Labels: integers (N,), integral floats, one-hot or probability rows (N, K) (arg-maxed, K
classes), or strings (the sorted distinct strings become the class names).
"""
from __future__ import annotations

import logging
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from cnnkit.data.dataset import DataSplits, ImageData, default_class_names
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "NHW", "NHWC", "NCHW")
_CHANNEL_COUNTS = (1, 3, 4)
_CHANNEL_LIKELIHOOD = {1: 2, 3: 2, 4: 1}  # grayscale and RGB are far more common than RGBA
# npz key pairs tried in order, for a single set and for split sets.
_SINGLE_KEYS = (("x", "y"), ("images", "labels"), ("X", "y"), ("data", "labels"))
_SPLIT_KEYS = {split: (f"x_{split}", f"y_{split}") for split in ("train", "val", "test")}


def _to_numpy(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (np.ndarray, list, tuple)):
        return np.asarray(value)
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _resolve_layout(shape: tuple[int, ...], layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    expected_ndim = {"NHW": 3, "NHWC": 4, "NCHW": 4}
    if layout != "auto":
        if len(shape) != expected_ndim[layout]:
            raise DataError(f"layout={layout!r} needs {expected_ndim[layout]}-D images, got "
                            f"shape {shape}")
        return layout
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DataError(f"images must be N×H×W, N×H×W×C or N×C×H×W, got shape {shape}")
    last, second = _CHANNEL_LIKELIHOOD.get(shape[-1], 0), _CHANNEL_LIKELIHOOD.get(shape[1], 0)
    if last > second:
        return "NHWC"
    if second > 0:
        return "NCHW"
    raise DataError(f"cannot tell where the channels are in images of shape {shape}: neither "
                    f"the 2nd nor the last dimension is one of {_CHANNEL_COUNTS}; pass "
                    "layout='NHWC' or layout='NCHW'")


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * 255
    if np.issubdtype(images.dtype, np.integer):
        low, high = (int(images.min()), int(images.max())) if images.size else (0, 0)
        if low < 0 or high > 255:
            raise DataError(f"integer images must hold pixel values 0..255, found {low}..{high}; "
                            "rescale them first")
        return images.astype(np.uint8)
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"images must be numbers, got dtype {images.dtype}")
    if not np.isfinite(images).all():
        raise DataError("images contain NaN or infinite values; clean them before loading")
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if low >= 0.0 and high <= 1.0:
        return np.rint(images * 255.0).astype(np.uint8)
    if low >= 0.0 and high <= 255.0:
        return np.rint(images).astype(np.uint8)
    raise DataError(f"float images must be in [0, 1] or [0, 255], found {low:g}..{high:g}; "
                    "normalised data cannot be turned back into pixels — pass the raw images")


def _labels_and_names(labels: np.ndarray, class_names, source: str,
                      allow_label_gaps: bool) -> tuple[np.ndarray, list[str]]:
    if labels.ndim == 2:
        if labels.shape[1] == 0:
            raise DataError(f"one-hot labels must have at least one column, got shape "
                            f"{labels.shape}")
        default = [str(k) for k in range(labels.shape[1])]
        labels = labels.argmax(axis=1)  # (N, K) one-hot -> (N,)
    elif labels.ndim != 1:
        raise DataError(f"labels must be (N,) class indices or (N, K) one-hot rows, got shape "
                        f"{labels.shape}")
    elif labels.dtype.kind in "USO":
        names, labels = np.unique(labels.astype(str), return_inverse=True)
        default = [str(name) for name in names]
    else:
        default = None
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError("labels must be whole numbers (class indices), got non-integer "
                            "floats; pass class indices or one-hot rows (N, K)")
    elif not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integers, one-hot rows or strings, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if class_names is None:
        class_names = default or default_class_names(labels, source,
                                                     allow_label_gaps=allow_label_gaps)
    return labels, list(class_names)


def from_arrays(images, labels, *, class_names=None, layout: str = "auto",
                source: str = "arrays", allow_label_gaps: bool = False) -> ImageData:
    """Build an ImageData from image and label arrays (numpy or torch).

    Args:
        images: N×H×W, N×H×W×C or N×C×H×W pixels (see the module docstring for dtypes).
        labels: (N,) integers or strings, or (N, K) one-hot rows.
        class_names: one name per class; default from the string labels, or "0".."K-1".
        layout: ``"auto"``, ``"NHW"``, ``"NHWC"`` or ``"NCHW"``.
        source: name used in error messages.
        allow_label_gaps: integer labels without ``class_names`` must be 0..K-1 without gaps;
            True accepts a gap (a K = max label + 1 model whose unused classes never appear;
            nothing is remapped).

    Shape:
        images -> (N, C, H, W) uint8 (C = 1 for N×H×W; 4 channels lose alpha -> 3);
        labels -> (N,) int64.

    Raises:
        TypeError: not an array or tensor.
        ValueError: unknown layout.
        DataError: ambiguous layout, pixel values out of range, non-integer labels, labels
            outside the classes, integer labels with gaps (unless ``allow_label_gaps``), or
            image and label counts that differ.

    Example:
        >>> data = from_arrays(np.random.rand(10, 28, 28, 1), np.arange(10) % 2)
        >>> data.input_shape
        (1, 28, 28)
    """
    images = _to_numpy(images, "images")
    labels = _to_numpy(labels, "labels")
    try:
        chosen = _resolve_layout(images.shape, layout)
        if chosen == "NHW":
            images = images[:, None, :, :]  # (N, H, W) -> (N, 1, H, W)
        elif chosen == "NHWC":
            images = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        if images.shape[1] == 4:
            logger.warning("images in %s have 4 channels; taking them as RGBA and dropping alpha",
                           source)
            images = images[:, :3]  # (N, 4, H, W) -> (N, 3, H, W)
        pixels = _to_uint8(images)
        label_values, names = _labels_and_names(labels, class_names, source,
                                                allow_label_gaps)
    except DataError as e:
        if str(e).startswith(f"{source}:"):  # the message names the source already
            raise
        raise DataError(f"{source}: {e}") from e
    return ImageData(torch.from_numpy(np.ascontiguousarray(pixels)),
                     torch.from_numpy(label_values), names, source=source)


def _load_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"array file {str(path)!r} does not exist; check the path")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"cannot read {path} without unpickling ({e}); save plain numeric "
                        "arrays with np.save / np.savez") from e
    except (OSError, EOFError, zipfile.BadZipFile, tokenize.TokenError, SyntaxError,
            NotImplementedError) as e:
        raise DataError(f"cannot read {path}: {e!r}; the file is corrupt or not a .npy/.npz "
                        "file") from e


def _member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as e:
        raise DataError(f"cannot read {path}[{key!r}] without unpickling ({e}); save plain "
                        "numeric or string arrays with np.savez") from e
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, tokenize.TokenError,
            SyntaxError, NotImplementedError, RuntimeError) as e:  # RuntimeError: encrypted
        raise DataError(f"cannot read {path}[{key!r}]: {e!r}; the archive is corrupt") from e


def load_npy(images_path, labels_path, *, allow_label_gaps: bool = False) -> ImageData:
    """Load images and labels from two ``.npy`` files (never unpickled).

    Raises:
        DataError: missing file, a file that needs unpickling, or anything ``from_arrays`` rejects
            (``allow_label_gaps`` as there).

    Example:
        >>> data = load_npy("x.npy", "y.npy")
    """
    images = _load_array(Path(images_path))
    labels = _load_array(Path(labels_path))
    return from_arrays(images, labels, source=str(images_path),
                       allow_label_gaps=allow_label_gaps)


def load_npz(path, *, images_key: str | None = None,
             labels_key: str | None = None,
             allow_label_gaps: bool = False) -> ImageData | DataSplits:
    """Load a ``.npz`` archive: one labelled set, or train/val/test sets.

    Keys are detected when not given: ``x``/``y``, ``images``/``labels``, ``X``/``y``,
    ``data``/``labels`` give one ImageData; ``x_train``/``y_train`` with ``x_test``/``y_test``
    and/or ``x_val``/``y_val`` give DataSplits. An optional ``class_names`` array of strings
    names the classes. Nothing is unpickled (``allow_pickle=False``). ``allow_label_gaps`` as in
    :func:`from_arrays`.

    Raises:
        ValueError: only one of images_key / labels_key given.
        DataError: no known key pair (the message lists the keys found), or bad arrays.

    Example:
        >>> splits = load_npz("mnist.npz")   # x_train, y_train, x_test, y_test
        >>> splits.train.input_shape
        (1, 28, 28)
    """
    path = Path(path)
    if (images_key is None) != (labels_key is None):
        raise ValueError(f"give both images_key and labels_key or neither, got "
                         f"images_key={images_key!r}, labels_key={labels_key!r}")
    archive = _load_array(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, not a .npz archive; use load_npy")
    with archive:
        keys = set(archive.files)
        names = ([str(n) for n in _member(archive, "class_names", path)]
                 if "class_names" in keys else None)
        if images_key is not None:
            pair = (images_key, labels_key)
        else:
            pair = next((p for p in _SINGLE_KEYS if set(p) <= keys), None)
        if pair is not None:
            x_key, y_key = pair
            if not {x_key, y_key} <= keys:
                raise DataError(f"{path} has no {sorted({x_key, y_key} - keys)}; keys are "
                                f"{sorted(keys)}")
            return from_arrays(_member(archive, x_key, path), _member(archive, y_key, path),
                               class_names=names, source=f"{path}[{x_key}]",
                               allow_label_gaps=allow_label_gaps)
        parts = {split: from_arrays(_member(archive, x, path), _member(archive, y, path),
                                    class_names=names, source=f"{path}[{x}]",
                                    allow_label_gaps=True)  # checked on all splits below
                 for split, (x, y) in _SPLIT_KEYS.items() if {x, y} <= keys}
    if "train" not in parts or len(parts) < 2:
        raise DataError(f"{path} has keys {sorted(keys)}; expected x/y, images/labels, or "
                        "x_train/y_train with x_test/y_test or x_val/y_val — or pass "
                        "images_key= and labels_key=")
    if names is None:
        _align_default_names(parts, str(path), allow_label_gaps)
    return DataSplits(**parts)


def _align_default_names(parts: dict[str, ImageData], source: str,
                         allow_label_gaps: bool) -> None:
    """Give every split the default "0".."K-1" names of all splits' integer labels together (a
    split may lack a class another has), refusing a gap in their union."""
    if any(part.class_names != [str(k) for k in range(part.num_classes)]
           for part in parts.values()):
        return  # string or one-hot labels: the names are the data's own
    every = torch.cat([part.labels for part in parts.values()])
    names = default_class_names(every, source, allow_label_gaps=allow_label_gaps)
    for split, part in parts.items():
        if part.class_names != names:
            parts[split] = ImageData(part.images, part.labels, names, source=part.source)
