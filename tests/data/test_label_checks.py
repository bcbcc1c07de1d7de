"""Labels outside a named dataset's classes, and label sets with gaps, are refused.

One check (``cnnkit.data.dataset``) serves every reader: named datasets refuse labels outside
their fixed classes; IDX, array and CSV sources without class names need labels 0..K-1 without
gaps unless ``allow_label_gaps=True`` (a K = max + 1 model, nothing remapped).
"""
import dataclasses
import gzip
import hashlib
import struct

import numpy as np
import pytest

from cnnkit.data import from_arrays, load_idx, load_named, load_npz, open_data
from cnnkit.data.dataset import check_label_range, default_class_names
from cnnkit.data.named import RemoteFile, dataset_info
from cnnkit.errors import DataError


def _idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                          *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _mnist_files(train_labels: np.ndarray, test_labels: np.ndarray) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 256, (len(train_labels), 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx_gz(train_labels),
        "t10k-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 256, (len(test_labels), 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(test_labels),
    }


def _write(folder, contents):
    folder.mkdir(parents=True)
    for name, body in contents.items():
        (folder / name).write_bytes(body)


def _info_for(name, contents):
    """The registered dataset with the checksums of our tiny files instead of the real ones."""
    info = dataset_info(name)
    files = tuple(RemoteFile(f.name, f.role, md5=hashlib.md5(contents[f.name]).hexdigest(),
                             size=len(contents[f.name])) for f in info.files)
    return dataclasses.replace(info, files=files)


# Two training labels of a 20-image MNIST changed to 200 and 255 (the example).
CORRUPT = np.arange(20) % 10
CORRUPT[[4, 13]] = [200, 255]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_named_dataset_refuses_labels_outside_its_classes(tmp_path, name):
    contents = _mnist_files(CORRUPT, np.arange(5) % 10)
    info = _info_for(name, contents)
    _write(tmp_path / info.folder, contents)
    with pytest.raises(DataError) as caught:
        load_named(info, data_dir=tmp_path, download=False)
    message = str(caught.value)
    assert "2 label(s) (at indices [4, 13], values [200, 255]) outside [0, 10)" in message
    assert f"{name} has exactly 10 classes" in message and "download the dataset again" in message


def test_idx_folder_with_a_gap_is_refused_unless_allowed(tmp_path):
    contents = _mnist_files(CORRUPT, np.arange(5) % 10)
    _write(tmp_path / "mine", contents)
    with pytest.raises(DataError) as caught:
        open_data(tmp_path / "mine")
    message = str(caught.value)
    assert "labels are not 0..K-1 without gaps: class 10 has no label" in message
    assert "2 label(s) (at indices [4, 13], values [200, 255]) lie above it" in message
    assert "allow_label_gaps=True to train a 256-class model" in message
    splits = open_data(tmp_path / "mine", allow_label_gaps=True)
    assert splits.train.num_classes == 256 and splits.test.num_classes == 256
    assert splits.train.labels[[4, 13]].tolist() == [200, 255]  # accepted as is, not remapped


def test_idx_gaps_are_judged_over_both_splits(tmp_path):
    # The test file lacks class 1, which train has: no gap in the dataset as a whole.
    _write(tmp_path / "ok", _mnist_files(np.array([0, 1, 2, 2]), np.array([0, 2])))
    splits = open_data(tmp_path / "ok")
    assert splits.train.class_names == splits.test.class_names == ["0", "1", "2"]


def test_load_idx_with_names_counts_every_offending_label(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "i", np.zeros((8, 2, 2), np.uint8))
    labels = idx_writer(tmp_path / "l", np.array([0, 7, 1, 9, 8, 7, 9, 9], np.uint8))
    with pytest.raises(DataError, match=r"6 label\(s\) \(at indices \[1, 3, 4, 5, 6, \.\.\.\], "
                                        r"values \[7, 9, 8, 7, 9, \.\.\.\]\) outside \[0, 3\)"):
        load_idx(images, labels, ["a", "b", "c"])


def test_arrays_and_npz_gaps(tmp_path):
    images = np.zeros((4, 2, 2), np.uint8)
    with pytest.raises(DataError, match=r"class 3 has no label .* 1 label\(s\) \(at indices "
                                        r"\[3\], values \[200\]\)"):
        from_arrays(images, [0, 1, 2, 200])
    accepted = from_arrays(images, [0, 1, 2, 200], allow_label_gaps=True)
    assert accepted.num_classes == 201
    np.savez(tmp_path / "d.npz", x_train=images, y_train=np.array([0, 1, 1, 3]),
             x_test=images[:2], y_test=np.array([2, 0]))
    splits = load_npz(tmp_path / "d.npz")  # 2 is only in test: the union has no gap
    assert splits.train.class_names == splits.test.class_names == ["0", "1", "2", "3"]
    np.savez(tmp_path / "g.npz", x_train=images, y_train=np.array([0, 1, 1, 5]),
             x_test=images[:2], y_test=np.array([1, 0]))
    with pytest.raises(DataError, match="class 2 has no label"):
        load_npz(tmp_path / "g.npz")
    assert load_npz(tmp_path / "g.npz", allow_label_gaps=True).train.num_classes == 6


def test_negative_labels_and_helpers():
    with pytest.raises(DataError, match=r"src: 1 label\(s\) \(at indices \[1\], values \[-3\]\) "
                                        "are negative"):
        default_class_names(np.array([0, -3]), "src")
    assert default_class_names(np.array([2, 0, 1]), "src") == ["0", "1", "2"]
    with pytest.raises(DataError, match="src: .* outside \\[0, 2\\) for 2 classes; do this"):
        check_label_range(np.array([0, 2]), 2, "src", fix="do this")
