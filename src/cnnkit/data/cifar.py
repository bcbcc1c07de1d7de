"""Reader for CIFAR-10 and CIFAR-100, python (pickle) and binary versions, folder or .tar.gz.

Layouts read (the official archives, extracted or not):

================  =====================================  ===================================
folder            train / test files                     class names
================  =====================================  ===================================
cifar-10-batches-py   data_batch_1..5 / test_batch       batches.meta (``label_names``)
cifar-100-python      train / test                       meta (``fine_label_names``, ...)
cifar-10-batches-bin  data_batch_1..5.bin / test_batch.bin   batches.meta.txt
cifar-100-binary      train.bin / test.bin               fine/coarse_label_names.txt
================  =====================================  ===================================

Pickle batches are read by a restricted unpickler that builds only numpy arrays (plus lists,
dicts, strings and numbers, which need no import); anything else is refused. Archives are read
member by member in memory and never extracted.

A CIFAR-10 folder (or archive) may hold only some of the five training batches, e.g. a
user's own subset with ``data_batch_1`` and ``data_batch_3``: the batches present are read and
a warning names the missing ones. A split with none of its batches is refused. Labels must lie
inside the class names of the meta file (10 for CIFAR-10, 100 fine or 20 coarse for CIFAR-100).
"""
from __future__ import annotations

import codecs
import importlib
import io
import logging
import pickle
import pickletools
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from cnnkit.data.dataset import ImageData, check_label_range
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_BYTES = 3 * 32 * 32
# The largest CIFAR file is CIFAR-100's train batch (about 155 MB): anything much bigger in an
# archive is not CIFAR, and reading it whole could exhaust memory (a tar/gzip bomb).
MAX_MEMBER_BYTES = 256 << 20


@dataclass(frozen=True)
class _Layout:
    """Where one CIFAR flavour keeps its files."""

    variant: str  # "cifar10" or "cifar100"
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: tuple[str, ...]
    binary: bool


LAYOUTS = (
    _Layout("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
            ("test_batch",), ("batches.meta",), binary=False),
    _Layout("cifar100", "cifar-100-python", ("train",), ("test",), ("meta",), binary=False),
    _Layout("cifar10", "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            ("test_batch.bin",), ("batches.meta.txt",), binary=True),
    _Layout("cifar100", "cifar-100-binary", ("train.bin",), ("test.bin",),
            ("fine_label_names.txt", "coarse_label_names.txt"), binary=True),
)


def _numpy_module(name: str):
    """``numpy._core.<name>`` on numpy 2, ``numpy.core.<name>`` on numpy 1."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{name}")


def _allowed_globals() -> dict[tuple[str, str], object]:
    multiarray, numeric = _numpy_module("multiarray"), _numpy_module("numeric")
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else that needs an import."""

    def __init__(self, file, source: str):
        super().__init__(file, encoding="bytes")
        self.source = source
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise DataError(f"refusing to unpickle {module}.{name} from {self.source}: CIFAR "
                            "batches contain only arrays, lists and strings")
        return self.allowed[(module, name)]


def _check_opcodes(raw: bytes, source: str) -> None:
    """Walk the pickle's opcodes without running them, so that a length field claiming more
    bytes than the file holds is refused before the unpickler tries to allocate it."""
    try:
        for _ in pickletools.genops(raw):
            pass
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean the same here
        raise DataError(f"{source} is not a readable CIFAR pickle batch: {e!r}") from e


def _unpickle(raw: bytes, source: str) -> dict[str, object]:
    _check_opcodes(raw, source)
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), source).load()
    except DataError:
        raise
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean the same here
        raise DataError(f"{source} is not a readable CIFAR pickle batch: {e!r}") from e
    if not isinstance(batch, dict):
        raise DataError(f"{source} holds a {type(batch).__name__}, expected a CIFAR batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in batch.items()}


def _names(values, source: str, key: str) -> list[str]:
    if not isinstance(values, (list, tuple)) or not values:
        raise DataError(f"{source}: {key!r} must be a non-empty list of names, got {values!r:.80}")
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except UnicodeDecodeError as e:
        raise DataError(f"{source}: {key!r} holds a name that is not UTF-8 ({e}); the file is "
                        "corrupt, download the dataset again") from e


class _Files:
    """The files of one CIFAR folder, either on disk or inside a .tar.gz (read in memory)."""

    def __init__(self, names: dict[str, Path | bytes], where: str):
        self.names = names
        self.where = where

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise DataError(f"{self.where} has no file {name!r}; is the dataset complete?")
        content = self.names[name]
        return content.read_bytes() if isinstance(content, Path) else content

    def describe(self, name: str) -> str:
        return f"{self.where}/{name}"


def _folder_files(path: Path) -> tuple[_Files, _Layout]:
    for layout in LAYOUTS:
        if (path / layout.folder).is_dir():
            path = path / layout.folder
            break
    present = {p.name: p for p in path.iterdir() if p.is_file()}
    for layout in LAYOUTS:
        batch_files = layout.test + layout.train
        if path.name == layout.folder or any(name in present for name in batch_files):
            return _Files(present, str(path)), layout
    raise DataError(f"{path} holds no CIFAR batches: expected one of the folders "
                    f"{[layout.folder for layout in LAYOUTS]} or their files "
                    "(data_batch_1, test_batch, train, test, *.bin)")


def _archive_files(path: Path, split: str) -> tuple[_Files, _Layout]:
    wanted = {f"{layout.folder}/{name}": layout for layout in LAYOUTS
              for name in getattr(layout, split) + layout.meta}
    contents: dict[str, bytes] = {}
    found: _Layout | None = None
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise DataError(f"{path} contains the unsafe member name {member.name!r}; "
                                    "refusing to read an archive with absolute or '..' paths")
                name = "/".join(p for p in parts if p != ".")
                if name not in wanted:
                    continue
                if not member.isfile():
                    raise DataError(f"{path}: member {member.name!r} is not a regular file "
                                    "(links are refused); use the official archive")
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{path}: member {member.name!r} claims {member.size} bytes, "
                                    f"more than any CIFAR file (MAX_MEMBER_BYTES="
                                    f"{MAX_MEMBER_BYTES}); refusing to read it")
                found = found or wanted[name]
                if wanted[name] is not found:
                    raise DataError(f"{path} mixes {found.folder} and {wanted[name].folder}")
                contents[PurePosixPath(name).name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot read the archive {path}: {e}; download it again") from e
    if found is None:
        raise DataError(f"{path} holds no CIFAR batches: expected members under one of "
                        f"{[layout.folder for layout in LAYOUTS]}")
    return _Files(contents, f"{path}:{found.folder}"), found


def _read_pickle_batch(files: _Files, name: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    source = files.describe(name)
    batch = _unpickle(files.read(name), source)
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != IMAGE_BYTES:
        found = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
                 else type(data).__name__)
        raise DataError(f"{source}: 'data' must be a uint8 array (N, {IMAGE_BYTES}), got {found}")
    if label_key not in batch:
        raise DataError(f"{source} has no {label_key!r}; keys are {sorted(batch)}")
    labels = np.asarray(batch[label_key])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(data):
        raise DataError(f"{source}: {label_key!r} must be {len(data)} integer labels, got "
                        f"{labels.dtype} with shape {labels.shape}")
    return data, labels


def _read_binary_batch(files: _Files, name: str, variant: str,
                       label_mode: str) -> tuple[np.ndarray, np.ndarray]:
    raw = files.read(name)
    label_bytes = 2 if variant == "cifar100" else 1
    record = label_bytes + IMAGE_BYTES
    if len(raw) == 0 or len(raw) % record:
        raise DataError(f"{files.describe(name)} has {len(raw)} bytes, not a multiple of the "
                        f"{record}-byte record ({label_bytes} label byte(s) + {IMAGE_BYTES} "
                        "pixels); the file is truncated or not a CIFAR binary batch")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)  # (N*record,) -> (N, record)
    label_column = 0 if variant == "cifar10" or label_mode == "coarse" else 1
    return records[:, label_bytes:], records[:, label_column].astype(np.int64)


def _class_names(files: _Files, layout: _Layout, label_mode: str) -> list[str]:
    if layout.binary:
        name = ("batches.meta.txt" if layout.variant == "cifar10"
                else f"{label_mode}_label_names.txt")
        try:
            lines = files.read(name).decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise DataError(f"{files.describe(name)} is not UTF-8 text ({e}); the label names "
                            "file is corrupt, download the dataset again") from e
        return _names([line.strip() for line in lines if line.strip()], files.describe(name), name)
    name = layout.meta[0]
    key = "label_names" if layout.variant == "cifar10" else f"{label_mode}_label_names"
    meta = _unpickle(files.read(name), files.describe(name))
    if key not in meta:
        raise DataError(f"{files.describe(name)} has no {key!r}; keys are {sorted(meta)}")
    return _names(meta[key], files.describe(name), key)


def load_cifar(path, *, split: str = "train", variant: str | None = None,
               label_mode: str = "fine") -> ImageData:
    """Load one split of CIFAR-10 or CIFAR-100 from its folder or its downloaded .tar.gz.

    Args:
        path: the extracted folder (``cifar-10-batches-py`` or its parent, etc.) or the archive.
        split: ``"train"`` (50000 images) or ``"test"`` (10000 images).
        variant: ``"cifar10"`` or ``"cifar100"``; None detects it from the files.
        label_mode: CIFAR-100 only: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Shape:
        images (N, 3, 32, 32): each 3072-byte row is 1024 red, 1024 green, 1024 blue values,
        row-major, so (N, 3072) -> (N, 3, 32, 32) is a plain reshape. labels (N,).

    Raises:
        ValueError: unknown split, variant or label_mode.
        DataError: a split with none of its batch files (some missing CIFAR-10 training
            batches only log a warning), a missing meta file, a pickle that asks for anything
            but arrays (refused), a batch of the wrong format, a binary file whose size is not
            a whole number of records, or labels outside the meta file's classes (the message
            counts them and names their first indices and values).

    Example:
        >>> data = load_cifar("data/cifar-10-python.tar.gz", split="test")
        >>> data.input_shape, data.class_names[:2]
        ((3, 32, 32), ['airplane', 'automobile'])
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if variant not in (None, "cifar10", "cifar100"):
        raise ValueError(f"variant must be None, 'cifar10' or 'cifar100', got {variant!r}")
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    path = Path(path)
    if path.is_dir():
        files, layout = _folder_files(path)
    elif path.is_file():
        files, layout = _archive_files(path, split)
    else:
        raise DataError(f"CIFAR path {str(path)!r} does not exist; give the extracted folder or "
                        "the downloaded .tar.gz")
    if variant is not None and variant != layout.variant:
        raise DataError(f"variant={variant!r} but {path} holds {layout.variant} "
                        f"({layout.folder}); drop variant= or pick the other dataset")
    if layout.variant == "cifar10" and label_mode == "coarse":
        raise ValueError("label_mode='coarse' exists only for CIFAR-100; drop it for CIFAR-10")

    expected = layout.train if split == "train" else layout.test
    batch_names = [name for name in expected if name in files.names]
    missing = [name for name in expected if name not in files.names]
    if not batch_names:
        raise DataError(f"{files.where} has none of the {split} batch files {list(expected)}; "
                        "is the dataset complete? Download it again or add the batches")
    if missing:
        logger.warning("%s has only %d of the %d %s batches: %s missing; reading %s (a subset "
                       "of %s)", files.where, len(batch_names), len(expected), split, missing,
                       batch_names, layout.variant)
    images, labels = [], []
    for name in batch_names:
        if layout.binary:
            data, batch_labels = _read_binary_batch(files, name, layout.variant, label_mode)
        else:
            label_key = "labels" if layout.variant == "cifar10" else f"{label_mode}_labels"
            data, batch_labels = _read_pickle_batch(files, name, label_key)
        images.append(data)
        labels.append(batch_labels)
    flat = np.concatenate(images)
    logger.info("read %d CIFAR images from %s (%s)", len(flat), files.where, split)
    images_4d = flat.reshape(len(flat), 3, 32, 32)  # (N, 3072) -> (N, 3, 32, 32)
    all_labels = np.concatenate(labels).astype(np.int64)
    class_names = _class_names(files, layout, label_mode)
    check_label_range(all_labels, len(class_names), f"{files.where} ({split})",
                      fix=f"the meta file names {len(class_names)} classes, so the batches (or "
                      "the meta file) are corrupt: download the dataset again")
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(images_4d)),
        torch.from_numpy(all_labels),
        class_names,
        source=files.where,
    )
