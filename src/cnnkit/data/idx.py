"""Reader for the IDX files of MNIST and its look-alikes (Fashion-MNIST, KMNIST, EMNIST).

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values in C order, big-endian. Files may be gzipped; the reader looks
at the first bytes, not at the file name.
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from cnnkit.data.dataset import ImageData, check_label_range, default_class_names
from cnnkit.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
# The most data one IDX file may claim: EMNIST "byclass", the largest IDX set, is 0.55 GB.
MAX_IDX_BYTES = 2 << 30
CHUNK_BYTES = 16 << 20

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

SPLIT_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def _open(path: Path) -> BinaryIO:
    """The file, or a decompressing stream over it when it starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == GZIP_MAGIC else open(path, "rb")


def _read_header(f: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Check the magic number and read the dimensions; the stream is left at the data."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path} is not an IDX file: its magic number is {magic.hex(' ')!r}, "
                        "expected '00 00 <type> <ndim>' (e.g. '00 00 08 03' for images)")
    type_code, ndim = magic[2], magic[3]
    if type_code not in IDX_DTYPES:
        raise DataError(f"{path} has IDX type code 0x{type_code:02X}, expected one of "
                        f"{[f'0x{code:02X}' for code in IDX_DTYPES]} (0x08 = uint8)")
    if ndim == 0:
        raise DataError(f"{path} has an IDX header with 0 dimensions; expected at least 1")
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path} is truncated: its header says {ndim} dimensions "
                        f"({4 + 4 * ndim} header bytes) but the file has only "
                        f"{4 + len(sizes)} bytes")
    return IDX_DTYPES[type_code], struct.unpack(f">{ndim}I", sizes)


def _read_at_most(f: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, read in chunks: memory grows with the data, not with the claim."""
    chunks, total = [], 0
    while total < size:
        chunk = f.read(min(CHUNK_BYTES, size - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a numpy array in native byte order.

    Reading is driven by the header: never more than the header's data size (plus one byte to
    detect trailing data) is decompressed, and headers that claim more than ``MAX_IDX_BYTES``
    are refused, so a gzip bomb cannot exhaust memory.

    Args:
        path: the ``.idx?-ubyte`` file, optionally gzipped (detected by its magic bytes).

    Shape:
        the dimensions written in the header, e.g. (60000, 28, 28) for MNIST images and
        (60000,) for labels. The data part must hold exactly prod(dims) * itemsize bytes.

    Raises:
        DataError: missing file, bad magic number, unknown type code, a data size that
            disagrees with the header (truncated or trailing bytes), or a header claiming more
            than ``MAX_IDX_BYTES``.

    Example:
        >>> read_idx("mnist/train-labels-idx1-ubyte.gz")[:3]
        array([5, 0, 4], dtype=uint8)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {str(path)!r} does not exist; check the path")
    try:
        with _open(path) as f:
            dtype, dims = _read_header(f, path)
            expected = math.prod(dims) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise DataError(f"{path} claims shape {dims} of {dtype.name} = {expected} data "
                                f"bytes, more than MAX_IDX_BYTES={MAX_IDX_BYTES}; the header is "
                                "corrupt (or the file is a decompression bomb)")
            raw = _read_at_most(f, expected + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot decompress {path}: {e}; the download is probably incomplete, "
                        "delete the file and download it again") from e
    if len(raw) != expected:
        problem = "is truncated" if len(raw) < expected else "has trailing bytes"
        found = f"{len(raw)} were found" if len(raw) < expected else "more were found"
        raise DataError(f"{path} {problem}: its header says shape {dims} of {dtype.name} = "
                        f"{expected} data bytes, but {found}; download the file again")
    try:
        values = np.frombuffer(raw, dtype=dtype).reshape(dims)
    except ValueError as e:  # an empty array whose other dimensions are absurd
        raise DataError(f"{path} has the impossible shape {dims} in its header ({e}); the file "
                        "is corrupt, download it again") from e
    return values.astype(dtype.newbyteorder("="))


def load_idx(images_path, labels_path, class_names=None, *, allow_label_gaps: bool = False,
             fix: str | None = None) -> ImageData:
    """Load an IDX image file and its IDX label file as an ImageData.

    Args:
        images_path: IDX file of uint8 images (N, H, W).
        labels_path: IDX file of integer labels (N,).
        class_names: one name per class (a named dataset's fixed classes); default
            ``["0", "1", ..., str(max label)]``, for labels 0..K-1 without gaps.
        allow_label_gaps: without ``class_names``, accept labels with unused classes (e.g.
            {0, 1, 2, 200} gives a 201-class model; nothing is remapped).
        fix: with ``class_names``, what the error for an out-of-range label tells the user.

    Shape:
        images (N, H, W) -> (N, 1, H, W); labels (N,).

    Raises:
        DataError: unreadable files, images that are not 3-D uint8, labels that are not 1-D
            integers, image and label counts that differ, labels outside ``class_names`` (the
            message counts them and names their first indices and values), or, without
            ``class_names``, labels with gaps (unless ``allow_label_gaps``).

    Example:
        >>> data = load_idx(*find_idx_pair("data/mnist", "train"))
        >>> data.input_shape
        (1, 28, 28)
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path} must hold uint8 images (N, H, W), got {images.dtype} with "
                        f"shape {images.shape}; did you swap the images and labels files?")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{labels_path} must hold integer labels (N,), got {labels.dtype} with "
                        f"shape {labels.shape}; did you swap the images and labels files?")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has "
                        f"{len(labels)} labels; the two files must come from the same split")
    if class_names is None:
        class_names = default_class_names(labels, str(labels_path),
                                          allow_label_gaps=allow_label_gaps)
    else:
        check_label_range(labels, len(class_names), str(labels_path), fix=fix)
    images_4d = images[:, None, :, :]  # (N, H, W) -> (N, 1, H, W)
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(images_4d)),
        torch.from_numpy(labels.astype(np.int64)),
        list(class_names),
        source=str(images_path),
    )


def _candidates(prefix: str, kind: str, idx_dims: int) -> list[str]:
    names = [f"{prefix}-{kind}-idx{idx_dims}-ubyte", f"{prefix}-{kind}.idx{idx_dims}-ubyte"]
    return [name + ext for name in names for ext in ("", ".gz")]


def find_idx_pair(folder, split: str = "train") -> tuple[Path, Path]:
    """Find the (images, labels) IDX files of one split in a folder.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (test:
    ``t10k-...``, or ``test-...``), the ``train-images.idx3-ubyte`` spelling, and ``.gz``
    versions of each.

    Args:
        folder: the folder holding the files.
        split: ``"train"`` or ``"test"``.

    Raises:
        ValueError: unknown split.
        DataError: the folder or one of the files is missing (the message lists the names tried).

    Example:
        >>> images, labels = find_idx_pair("data/mnist", "test")
        >>> images.name, labels.name
        ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
    """
    if split not in SPLIT_PREFIXES:
        raise ValueError(f"split must be one of {sorted(SPLIT_PREFIXES)}, got {split!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"IDX folder {str(folder)!r} does not exist; check the path")
    found = []
    for kind, idx_dims in (("images", 3), ("labels", 1)):
        tried = [name for prefix in SPLIT_PREFIXES[split]
                 for name in _candidates(prefix, kind, idx_dims)]
        match = next((folder / name for name in tried if (folder / name).is_file()), None)
        if match is None:
            present = sorted(p.name for p in folder.iterdir() if "ubyte" in p.name)
            raise DataError(f"no {split} {kind} IDX file in {folder}: looked for {tried}; "
                            f"IDX-like files there: {present or 'none'}")
        found.append(match)
    return found[0], found[1]
