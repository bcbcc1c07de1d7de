"""CIFAR reader: pickle and binary batches, folders and .tar.gz, and the restricted unpickler."""
from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from cnnkit.data.cifar import load_cifar
from cnnkit.errors import DataError


def check(data, written, split, labels_key=None):
    np.testing.assert_array_equal(data.images.numpy(), written.images[split])
    np.testing.assert_array_equal(data.labels.numpy(), written.labels[labels_key or split])


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_python_folder(cifar10_py_dir, split):
    data = load_cifar(cifar10_py_dir.path, split=split)
    check(data, cifar10_py_dir, split)
    assert data.class_names == cifar10_py_dir.class_names
    assert data.input_shape == (3, 32, 32)


def test_cifar10_batches_folder_itself(cifar10_py_dir):
    data = load_cifar(cifar10_py_dir.path / "cifar-10-batches-py", split="test", variant="cifar10")
    check(data, cifar10_py_dir, "test")


def test_cifar10_tar_gz(cifar10_tar_gz):
    check(load_cifar(cifar10_tar_gz.path, split="train"), cifar10_tar_gz, "train")
    check(load_cifar(cifar10_tar_gz.path, split="test"), cifar10_tar_gz, "test")


def test_cifar100_python_fine_and_coarse(cifar100_py_dir):
    fine = load_cifar(cifar100_py_dir.path, split="train")
    check(fine, cifar100_py_dir, "train")
    assert fine.num_classes == 100 and fine.class_names[3] == "fine3"
    coarse = load_cifar(cifar100_py_dir.path, split="test", label_mode="coarse")
    check(coarse, cifar100_py_dir, "test", "test_coarse")
    assert coarse.num_classes == 20 and coarse.class_names[0] == "coarse0"


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_binary(cifar10_bin_dir, split):
    data = load_cifar(cifar10_bin_dir.path, split=split)
    check(data, cifar10_bin_dir, split)
    assert data.class_names == cifar10_bin_dir.class_names


def test_cifar100_binary_and_tar(cifar100_bin_dir, tar_writer, tmp_path):
    check(load_cifar(cifar100_bin_dir.path, split="train"), cifar100_bin_dir, "train")
    coarse = load_cifar(cifar100_bin_dir.path, split="train", label_mode="coarse")
    check(coarse, cifar100_bin_dir, "train", "train_coarse")
    archive = tar_writer(cifar100_bin_dir.path / "cifar-100-binary", tmp_path / "c100.tar.gz")
    check(load_cifar(archive, split="test"), cifar100_bin_dir, "test")


@pytest.mark.parametrize("protocol, numpy_module", [(2, "numpy.core"), (2, "numpy._core"),
                                                    (pickle.HIGHEST_PROTOCOL, "numpy._core")])
def test_pickles_from_either_numpy_and_protocol(tmp_path, cifar10_py_dir, protocol, numpy_module):
    """Real batches are protocol-2 pickles naming numpy.core (numpy 1); numpy 2 writes numpy._core.

    Protocol 2 writes module names as newline-ended text, so renaming them in the bytes is safe.
    """
    folder = cifar10_py_dir.path / "cifar-10-batches-py"
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    raw = pickle.dumps({"data": images, "labels": np.array([3, 4])}, protocol=protocol)
    raw = raw.replace(b"numpy._core", b"numpy.core") if numpy_module == "numpy.core" else raw
    (folder / "test_batch").write_bytes(raw)
    data = load_cifar(folder, split="test")
    np.testing.assert_array_equal(data.images.numpy().reshape(2, 3072), images)
    assert data.labels.tolist() == [3, 4]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_without_side_effect(cifar10_py_dir, tmp_path):
    marker = tmp_path / "pwned"
    folder = cifar10_py_dir.path / "cifar-10-batches-py"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(marker), b"labels": [0]}, f)
    with pytest.raises(DataError, match=r"refusing to unpickle posix\.system from .*test_batch: "
                                        "CIFAR batches contain only arrays, lists and strings"):
        load_cifar(cifar10_py_dir.path, split="test")
    assert not marker.exists()


def test_crafted_meta_is_refused(cifar10_py_dir, tmp_path):
    marker = tmp_path / "pwned"
    with open(cifar10_py_dir.path / "cifar-10-batches-py" / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [_Evil(marker)]}, f)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_cifar(cifar10_py_dir.path, split="test")
    assert not marker.exists()


@pytest.mark.parametrize("batch, match", [
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"uint8 array \(N, 3072\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "float32"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, "has no 'labels'"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "must be 2 integer labels"),
    ([1, 2, 3], "holds a list"),
])
def test_batch_format_checked(cifar10_py_dir, batch, match):
    with open(cifar10_py_dir.path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(DataError, match=match):
        load_cifar(cifar10_py_dir.path, split="test")


def test_label_outside_meta_names(cifar10_bin_dir):
    (cifar10_bin_dir.path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"outside \[0, 2\)"):
        load_cifar(cifar10_bin_dir.path, split="train")


def test_binary_size_not_a_multiple_of_the_record(cifar10_bin_dir):
    path = cifar10_bin_dir.path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"6145 bytes, not a multiple of the 3073-byte record"):
        load_cifar(cifar10_bin_dir.path, split="test")


def test_missing_batch_and_wrong_variant(cifar10_py_dir):
    os.remove(cifar10_py_dir.path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError, match=r"none of the test batch files \['test_batch'\]"):
        load_cifar(cifar10_py_dir.path, split="test")
    with pytest.raises(DataError, match="variant='cifar100' but .* holds cifar10"):
        load_cifar(cifar10_py_dir.path, split="test", variant="cifar100")
    with pytest.raises(ValueError, match="only for CIFAR-100"):
        load_cifar(cifar10_py_dir.path, split="test", label_mode="coarse")


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_cifar(tmp_path, split="val")
    with pytest.raises(ValueError, match="variant"):
        load_cifar(tmp_path, variant="cifar20")
    with pytest.raises(DataError, match="does not exist"):
        load_cifar(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no CIFAR batches"):
        load_cifar(tmp_path)


def _tar_with(tmp_path, member: tarfile.TarInfo, payload: bytes = b""):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return archive


def test_tar_path_tricks_refused(tmp_path):
    archive = _tar_with(tmp_path, tarfile.TarInfo("cifar-10-batches-py/../../evil"), b"x")
    with pytest.raises(DataError, match="unsafe member name"):
        load_cifar(archive)
    absolute = _tar_with(tmp_path, tarfile.TarInfo("/etc/evil"), b"x")
    with pytest.raises(DataError, match="unsafe member name"):
        load_cifar(absolute)
    assert not (tmp_path.parent / "evil").exists()


def test_tar_links_refused(tmp_path):
    link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(DataError, match="not a regular file"):
        load_cifar(_tar_with(tmp_path, link), split="test")


def test_not_an_archive(tmp_path):
    path = tmp_path / "cifar.tar.gz"
    path.write_bytes(b"not a tar")
    with pytest.raises(DataError, match="cannot read the archive"):
        load_cifar(path)
