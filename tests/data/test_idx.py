"""IDX reader: hand-written headers, gzip detection, every error, and the real MNIST files."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from cnnkit.data.idx import find_idx_pair, load_idx, read_idx
from cnnkit.errors import DataError


@pytest.mark.parametrize("type_code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                              (0x0C, np.int32), (0x0D, np.float32),
                                              (0x0E, np.float64)])
def test_read_idx_every_type_big_endian(tmp_path, idx_writer, type_code, dtype):
    values = (np.arange(24).reshape(2, 3, 4) * 3 - 20).astype(dtype) if dtype != np.uint8 \
        else np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    idx_writer(tmp_path / "a.idx", values, type_code=type_code)
    out = read_idx(tmp_path / "a.idx")
    assert out.shape == (2, 3, 4)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, values)


def test_hand_written_header(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([7, 0, 9]))
    np.testing.assert_array_equal(read_idx(path), [7, 0, 9])


def test_gzip_detected_by_magic_not_name(tmp_path, idx_writer):
    values = np.arange(6, dtype=np.uint8).reshape(2, 3)
    idx_writer(tmp_path / "no-extension", values, gz=True)
    idx_writer(tmp_path / "fake.gz", values, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "no-extension"), values)
    np.testing.assert_array_equal(read_idx(tmp_path / "fake.gz"), values)


def test_bad_magic(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match=r"not an IDX file: its magic number is '89 50 4e 47'"):
        read_idx(path)


def test_unknown_type_code(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="type code 0x07"):
        read_idx(path)


def test_truncated_data(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "x", np.zeros((4, 5, 5), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"is truncated: its header says shape \(4, 5, 5\) of uint8 "
                                        r"= 100 data bytes, but 90 were found"):
        read_idx(path)


def test_truncated_header_and_trailing_bytes(tmp_path, idx_writer):
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 4))
    with pytest.raises(DataError, match="header says 3 dimensions"):
        read_idx(short)
    long = idx_writer(tmp_path / "long", np.zeros(3, np.uint8))
    long.write_bytes(long.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="has trailing bytes"):
        read_idx(long)


def test_truncated_gzip(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "x.gz", np.arange(200, dtype=np.uint8), gz=True)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="cannot decompress .*download"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")


def test_load_idx_adds_channel_axis(idx_dir):
    data = load_idx(*find_idx_pair(idx_dir.path, "train"))
    assert data.images.shape == (12, 1, 5, 6)
    np.testing.assert_array_equal(data.images.numpy(), idx_dir.images["train"])
    np.testing.assert_array_equal(data.labels.numpy(), idx_dir.labels["train"])
    assert data.class_names == ["0", "1", "2"]
    test = load_idx(*find_idx_pair(idx_dir.path, "test"), class_names=["a", "b", "c", "d"])
    assert len(test) == 6 and test.num_classes == 4


def test_load_idx_count_mismatch(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "i", np.zeros((3, 2, 2), np.uint8))
    labels = idx_writer(tmp_path / "l", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="has 3 images but .* has 2 labels"):
        load_idx(images, labels)


def test_load_idx_swapped_files(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "i", np.zeros((3, 2, 2), np.uint8))
    labels = idx_writer(tmp_path / "l", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="swap"):
        load_idx(labels, images)


def test_load_idx_labels_out_of_range(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "i", np.zeros((2, 2, 2), np.uint8))
    labels = idx_writer(tmp_path / "l", np.array([0, 5], np.uint8))
    with pytest.raises(DataError,
                       match=r"1 label\(s\) \(at indices \[1\], values \[5\]\) outside \[0, 3\)"):
        load_idx(images, labels, class_names=["a", "b", "c"])


def test_find_idx_pair_dot_variant_and_plain(tmp_path, idx_writer):
    idx_writer(tmp_path / "t10k-images.idx3-ubyte", np.zeros((1, 2, 2), np.uint8))
    idx_writer(tmp_path / "t10k-labels.idx1-ubyte", np.zeros(1, np.uint8))
    images, labels = find_idx_pair(tmp_path, "test")
    assert (images.name, labels.name) == ("t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte")


def test_find_idx_pair_lists_what_it_tried(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    expected = (r"no train labels IDX file .*train-labels-idx1-ubyte\.gz"
                r".*IDX-like files there: \['train-images-idx3-ubyte\.gz'\]")
    with pytest.raises(DataError, match=expected):
        find_idx_pair(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        find_idx_pair(tmp_path, "val")


def test_real_mnist(mnist_dir):
    data = load_idx(*find_idx_pair(mnist_dir, "train"))
    assert data.images.shape == (60000, 1, 28, 28)
    assert data.labels.min() == 0 and data.labels.max() == 9
    assert int(data.labels[0]) == 5
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read(8) == b"\x00\x00\x08\x01" + struct.pack(">I", 10000)
