"""A CIFAR-10 folder with only some of its training batches (a user's subset) loads with a
warning naming the missing ones; a split with no batches at all is refused."""
import logging
import os

import numpy as np
import pytest

from cnnkit.data import load_cifar, open_data
from cnnkit.errors import DataError


def _keep_only(folder, kept):
    for i in range(1, 6):
        if f"data_batch_{i}" not in kept:
            os.remove(folder / f"data_batch_{i}")


def test_subset_of_batches_loads_with_a_warning(cifar10_py_dir, caplog):
    folder = cifar10_py_dir.path / "cifar-10-batches-py"
    _keep_only(folder, {"data_batch_1", "data_batch_3"})
    with caplog.at_level(logging.WARNING, logger="cnnkit.data.cifar"):
        data = load_cifar(cifar10_py_dir.path, split="train")
    # Each fixture batch holds 2 images: batches 1 and 3 are images 0-1 and 4-5.
    want = cifar10_py_dir.images["train"][[0, 1, 4, 5]]
    assert np.array_equal(data.images.numpy(), want)
    assert data.labels.tolist() == cifar10_py_dir.labels["train"][[0, 1, 4, 5]].tolist()
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "only 2 of the 5 train batches" in warning
    assert "['data_batch_2', 'data_batch_4', 'data_batch_5'] missing" in warning
    test = open_data(cifar10_py_dir.path).test  # the test split is whole: no warning for it
    assert len(test) == 3


def test_subset_in_an_archive(cifar10_py_dir, tar_writer, tmp_path, caplog):
    folder = cifar10_py_dir.path / "cifar-10-batches-py"
    _keep_only(folder, {"data_batch_2"})
    archive = tar_writer(folder, tmp_path / "cifar-10-python.tar.gz")
    with caplog.at_level(logging.WARNING, logger="cnnkit.data.cifar"):
        data = load_cifar(archive, split="train")
    assert len(data) == 2 and "only 1 of the 5 train batches" in caplog.text


def test_no_training_batch_is_refused(cifar10_py_dir):
    _keep_only(cifar10_py_dir.path / "cifar-10-batches-py", set())
    with pytest.raises(DataError, match=r"none of the train batch files \['data_batch_1', "):
        load_cifar(cifar10_py_dir.path, split="train")


def test_cifar_labels_outside_the_meta_classes(cifar10_bin_dir):
    path = cifar10_bin_dir.path / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = 200  # the first record's label byte
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"\(test\): 1 label\(s\) \(at indices \[0\], values "
                                        r"\[200\]\) outside \[0, 10\) .* download the dataset"):
        load_cifar(cifar10_bin_dir.path, split="test")
