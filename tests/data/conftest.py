"""Fixtures that write tiny files in the real dataset formats into tmp_path.

Each fixture returns a ``Written`` record: the path to give the reader plus the arrays that were
written, so a test compares what it reads with what went in (not with the reader's own output).
"""
from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


@dataclass
class Written:
    """What a fixture wrote: where, and the (N, C, H, W) uint8 images and (N,) labels per split."""

    path: Path
    class_names: list[str]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------- IDX

def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: magic 00 00 <type> <ndim>, big-endian uint32 dims, big-endian values."""
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian[type_code]).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, type_code: int = 0x08) -> Path:
    data = idx_bytes(array, type_code)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def idx_dir(tmp_path) -> Written:
    """MNIST-style folder: train (12 images 5x6) and t10k (6 images), gzipped, 3 classes."""
    rng = np.random.default_rng(1)
    written = Written(tmp_path / "idx", ["0", "1", "2"])
    written.path.mkdir()
    for split, prefix, n in (("train", "train", 12), ("test", "t10k", 6)):
        images = rng.integers(0, 256, (n, 5, 6), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 3
        write_idx(written.path / f"{prefix}-images-idx3-ubyte.gz", images, gz=True)
        write_idx(written.path / f"{prefix}-labels-idx1-ubyte.gz", labels, gz=True)
        written.images[split] = images[:, None]  # (N, H, W) -> (N, 1, H, W)
        written.labels[split] = labels.astype(np.int64)
    return written


# ---------------------------------------------------------------- CIFAR

def _cifar_arrays(rng, n: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n).astype(np.int64)
    return images, labels


def _dump(path: Path, obj, protocol: int = 2) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.fixture
def cifar10_py_dir(tmp_path) -> Written:
    """``cifar-10-batches-py``: 5 train batches of 2 images and a test batch of 3, bytes keys."""
    rng = np.random.default_rng(2)
    written = Written(tmp_path / "cifar10", CIFAR10_NAMES)
    folder = written.path / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    for split, names in batches.items():
        parts = [_cifar_arrays(rng, 3 if split == "test" else 2, 10) for _ in names]
        for name, (images, labels) in zip(names, parts):
            flat = images.reshape(len(images), 3072)  # (N, 3, 32, 32) -> (N, 3072)
            _dump(folder / name, {b"batch_label": name.encode(), b"labels": labels.tolist(),
                                  b"data": flat, b"filenames": [b"x.png"] * len(images)})
        written.images[split] = np.concatenate([p[0] for p in parts])
        written.labels[split] = np.concatenate([p[1] for p in parts])
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES],
                                    b"num_vis": 3072, b"num_cases_per_batch": 2})
    return written


@pytest.fixture
def cifar100_py_dir(tmp_path) -> Written:
    """``cifar-100-python``: train (4 images) and test (2), fine and coarse labels, meta."""
    rng = np.random.default_rng(3)
    fine_names = [f"fine{k}" for k in range(100)]
    written = Written(tmp_path / "cifar100", fine_names)
    folder = written.path / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", 4), ("test", 2)):
        images, fine = _cifar_arrays(rng, n, 100)
        coarse = fine // 5
        flat = images.reshape(n, 3072)  # (N, 3, 32, 32) -> (N, 3072)
        _dump(folder / split, {b"data": flat, b"fine_labels": fine.tolist(),
                               b"coarse_labels": coarse.tolist()})
        written.images[split] = images
        written.labels[split] = fine
        written.labels[f"{split}_coarse"] = coarse
    _dump(folder / "meta", {b"fine_label_names": [n.encode() for n in fine_names],
                            b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)]})
    return written


def _binary_records(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    labels = np.stack(label_columns, axis=1).astype(np.uint8)  # k x (N,) -> (N, k)
    flat = images.reshape(len(images), 3072)  # (N, 3, 32, 32) -> (N, 3072)
    return np.concatenate([labels, flat], axis=1).tobytes()


@pytest.fixture
def cifar10_bin_dir(tmp_path) -> Written:
    """``cifar-10-batches-bin``: 1 label byte + 3072 pixel bytes per record."""
    rng = np.random.default_rng(4)
    written = Written(tmp_path / "cifar10bin", CIFAR10_NAMES)
    folder = written.path / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    batches = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    for split, names in batches.items():
        parts = [_cifar_arrays(rng, 2, 10) for _ in names]
        for name, (images, labels) in zip(names, parts):
            (folder / name).write_bytes(_binary_records(images, labels))
        written.images[split] = np.concatenate([p[0] for p in parts])
        written.labels[split] = np.concatenate([p[1] for p in parts])
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    return written


@pytest.fixture
def cifar100_bin_dir(tmp_path) -> Written:
    """``cifar-100-binary``: coarse byte + fine byte + 3072 pixel bytes per record."""
    rng = np.random.default_rng(5)
    written = Written(tmp_path / "cifar100bin", [f"fine{k}" for k in range(100)])
    folder = written.path / "cifar-100-binary"
    folder.mkdir(parents=True)
    for split, n in (("train", 3), ("test", 2)):
        images, fine = _cifar_arrays(rng, n, 100)
        (folder / f"{split}.bin").write_bytes(_binary_records(images, fine // 5, fine))
        written.images[split] = images
        written.labels[split] = fine
        written.labels[f"{split}_coarse"] = fine // 5
    (folder / "fine_label_names.txt").write_text("\n".join(written.class_names))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{k}" for k in range(20)))
    return written


def make_tar_gz(folder: Path, archive: Path) -> Path:
    """Pack ``folder`` into ``archive`` with members named ``<folder name>/<file>``."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


@pytest.fixture
def cifar10_tar_gz(cifar10_py_dir, tmp_path) -> Written:
    """The python-version CIFAR-10 fixture packed as ``cifar-10-python.tar.gz``."""
    archive = make_tar_gz(cifar10_py_dir.path / "cifar-10-batches-py",
                          tmp_path / "cifar-10-python.tar.gz")
    return Written(archive, cifar10_py_dir.class_names, cifar10_py_dir.images,
                   cifar10_py_dir.labels)


# ---------------------------------------------------------------- image folders

def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Write a (C, H, W) uint8 array (C = 1 or 3) in the format given by the file extension."""
    if pixels.shape[0] == 1:
        array = pixels[0]  # (1, H, W) -> (H, W)
    else:
        array = pixels.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    image_format = Image.registered_extensions()[path.suffix.lower()]
    Image.fromarray(np.ascontiguousarray(array)).save(path, format=image_format)
    return path


@pytest.fixture
def image_folder(tmp_path) -> Written:
    """``root/<class>/`` with 3 classes (one with a space and a non-ASCII name), colour PNGs.

    Images are 6x8 (HxW) RGB PNGs (lossless, so pixels can be compared); files are named so
    that their sorted order is the written order.
    """
    rng = np.random.default_rng(6)
    class_names = ["cat", "dog", "red panda ü"]
    written = Written(tmp_path / "pets", class_names)
    images, labels = [], []
    for label, name in enumerate(class_names):
        (written.path / name).mkdir(parents=True)
        for i in range(label + 2):
            pixels = rng.integers(0, 256, (3, 6, 8), dtype=np.uint8)
            write_image(written.path / name / f"img{i}.png", pixels)
            images.append(pixels)
            labels.append(label)
    written.images["all"] = np.stack(images)
    written.labels["all"] = np.array(labels, dtype=np.int64)
    return written


# ---------------------------------------------------------------- npz and CSV

@pytest.fixture
def npz_splits(tmp_path) -> Written:
    """``x_train``/``y_train``/``x_test``/``y_test`` channels-last uint8 arrays, like Keras."""
    rng = np.random.default_rng(7)
    written = Written(tmp_path / "data.npz", ["0", "1", "2"])
    arrays = {}
    for split, n in (("train", 9), ("test", 3)):
        images = rng.integers(0, 256, (n, 4, 5, 3), dtype=np.uint8)
        labels = np.arange(n) % 3
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
        written.images[split] = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        written.labels[split] = labels.astype(np.int64)
    np.savez(written.path, **arrays)
    return written


@pytest.fixture
def csv_dataset(tmp_path) -> Written:
    """``labels.csv`` (columns filename,label with class names) next to ``imgs/*.png``."""
    rng = np.random.default_rng(8)
    written = Written(tmp_path / "labels.csv", ["bird", "fish"])
    (tmp_path / "imgs").mkdir()
    rows, images, labels = ["filename,label"], [], []
    for i, name in enumerate(["fish", "bird", "fish", "bird"]):
        pixels = rng.integers(0, 256, (1, 7, 7), dtype=np.uint8)
        write_image(tmp_path / "imgs" / f"{i}.png", pixels)
        rows.append(f"imgs/{i}.png,{name}")
        images.append(pixels)
        labels.append(written.class_names.index(name))
    written.path.write_text("\n".join(rows) + "\n")
    written.images["all"] = np.stack(images)
    written.labels["all"] = np.array(labels, dtype=np.int64)
    return written


# ---------------------------------------------------------------- writers as fixtures
# (conftest modules cannot be imported by tests, so the helpers are handed out as fixtures)

@pytest.fixture
def idx_writer():
    """``write_idx(path, array, *, gz=False, type_code=0x08)``."""
    return write_idx


@pytest.fixture
def image_writer():
    """``write_image(path, pixels (C, H, W) uint8)``; the format follows the extension."""
    return write_image


@pytest.fixture
def tar_writer():
    """``make_tar_gz(folder, archive)``."""
    return make_tar_gz
