"""from_arrays, load_npz and load_npy: layouts, dtypes, label forms and their errors."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from cnnkit.data.arrays import from_arrays, load_npy, load_npz
from cnnkit.data.dataset import DataSplits
from cnnkit.errors import DataError

RNG = np.random.default_rng(0)
NCHW = RNG.integers(0, 256, (5, 3, 4, 6), dtype=np.uint8)
LABELS = np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize("images, layout", [
    (NCHW, "auto"),
    (NCHW.transpose(0, 2, 3, 1), "auto"),  # (N, C, H, W) -> (N, H, W, C)
    (torch.from_numpy(NCHW), "auto"),
    (NCHW, "NCHW"),
    (NCHW.transpose(0, 2, 3, 1), "NHWC"),  # (N, C, H, W) -> (N, H, W, C)
])
def test_layouts_give_nchw(images, layout):
    data = from_arrays(images, LABELS, layout=layout)
    np.testing.assert_array_equal(data.images.numpy(), NCHW)
    assert data.class_names == ["0", "1", "2"]


def test_grayscale_nhw():
    images = RNG.integers(0, 256, (3, 5, 5), dtype=np.uint8)
    data = from_arrays(images, [0, 1, 0])
    np.testing.assert_array_equal(data.images.numpy()[:, 0], images)


def test_rgba_drops_alpha_with_warning(caplog):
    images = np.zeros((2, 5, 5, 4), np.uint8)
    images[..., 3] = 255
    with caplog.at_level(logging.WARNING, logger="cnnkit.data.arrays"):
        data = from_arrays(images, [0, 1])
    assert data.input_shape == (3, 5, 5) and int(data.images.max()) == 0
    assert "dropping alpha" in caplog.text


def test_auto_layout_prefers_grayscale_and_rgb_axes():
    assert from_arrays(np.zeros((2, 4, 6, 3), np.uint8), [0, 1]).input_shape == (3, 4, 6)
    assert from_arrays(np.zeros((2, 3, 6, 4), np.uint8), [0, 1]).input_shape == (3, 6, 4)
    assert from_arrays(np.zeros((2, 1, 6, 1), np.uint8), [0, 1]).input_shape == (1, 6, 1)


def test_ambiguous_layout():
    with pytest.raises(DataError, match="cannot tell where the channels are .*pass layout="):
        from_arrays(np.zeros((2, 5, 5, 5), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="layout must be one of"):
        from_arrays(NCHW, LABELS, layout="CHW")
    with pytest.raises(DataError, match="layout='NHW' needs 3-D"):
        from_arrays(NCHW, LABELS, layout="NHW")


def test_float_images_scaled():
    unit = np.array([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3).repeat(2, 0)
    data = from_arrays(unit, [0, 1], layout="NCHW")
    assert data.images[0, 0, 0].tolist() == [0, 128, 255]
    wide = from_arrays(unit * 200.4, [0, 1], layout="NCHW")
    assert wide.images[0, 0, 0].tolist() == [0, 100, 200]


@pytest.mark.parametrize("values, match", [
    (np.array([-0.5, 0.5]), r"float images must be in \[0, 1\] or \[0, 255\], found -0.5..0.5"),
    (np.array([0.0, 300.0]), "found 0..300"),
    (np.array([0.0, np.nan]), "NaN"),
    (np.array([0, 256]), "0..255, found 0..256"),
])
def test_bad_pixel_values(values, match):
    images = values.reshape(1, 1, 1, 2).repeat(2, 0)
    with pytest.raises(DataError, match=match):
        from_arrays(images, [0, 1], layout="NCHW", source="mine")


def test_label_forms():
    one_hot = np.eye(4)[[3, 0]]
    data = from_arrays(NCHW[:2], one_hot)
    assert data.labels.tolist() == [3, 0] and data.num_classes == 4
    assert from_arrays(NCHW[:2], np.array([1.0, 0.0])).labels.tolist() == [1, 0]
    named = from_arrays(NCHW[:3], np.array(["dog", "cat", "dog"]))
    assert named.class_names == ["cat", "dog"] and named.labels.tolist() == [1, 0, 1]
    given = from_arrays(NCHW[:2], [0, 1], class_names=["a", "b", "c"])
    assert given.class_names == ["a", "b", "c"]


def test_label_errors():
    with pytest.raises(DataError, match="whole numbers"):
        from_arrays(NCHW[:2], np.array([0.5, 1.0]))
    with pytest.raises(DataError, match=r"5 images but 2 labels in arrays"):
        from_arrays(NCHW, [0, 1])
    with pytest.raises(DataError, match=r"outside \[0, 2\)"):
        from_arrays(NCHW[:2], [0, 5], class_names=["a", "b"])
    with pytest.raises(TypeError, match="images must be a numpy array or a torch tensor"):
        from_arrays("pictures", [0])


def test_npz_single_and_keys(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=NCHW, labels=LABELS, class_names=np.array(["r", "g", "b"]))
    data = load_npz(path)
    np.testing.assert_array_equal(data.images.numpy(), NCHW)
    assert data.class_names == ["r", "g", "b"]
    np.savez(path, pix=NCHW, lab=LABELS)
    assert len(load_npz(path, images_key="pix", labels_key="lab")) == 5
    with pytest.raises(DataError, match=r"has keys \['lab', 'pix'\]; expected x/y"):
        load_npz(path)
    with pytest.raises(ValueError, match="both images_key and labels_key"):
        load_npz(path, images_key="pix")
    with pytest.raises(DataError, match=r"has no \['nope'\]"):
        load_npz(path, images_key="pix", labels_key="nope")


def test_npz_splits(npz_splits):
    splits = load_npz(npz_splits.path)
    assert isinstance(splits, DataSplits) and splits.val is None
    for split in ("train", "test"):
        part = getattr(splits, split)
        np.testing.assert_array_equal(part.images.numpy(), npz_splits.images[split])
        np.testing.assert_array_equal(part.labels.numpy(), npz_splits.labels[split])


def test_npz_splits_where_test_lacks_the_top_class(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, x_train=NCHW, y_train=LABELS, x_test=NCHW[:2], y_test=LABELS[:2])
    assert load_npz(path).test.class_names == ["0", "1", "2"]


def test_pickled_arrays_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="without unpickling"):
        load_npz(path)


def test_npy(tmp_path):
    np.save(tmp_path / "x.npy", NCHW.transpose(0, 2, 3, 1))  # (N, C, H, W) -> (N, H, W, C)
    np.save(tmp_path / "y.npy", LABELS)
    data = load_npy(tmp_path / "x.npy", tmp_path / "y.npy")
    np.testing.assert_array_equal(data.images.numpy(), NCHW)
    with pytest.raises(DataError, match="does not exist"):
        load_npy(tmp_path / "nope.npy", tmp_path / "y.npy")
    with pytest.raises(DataError, match="single .npy array, not a .npz"):
        load_npz(tmp_path / "x.npy")
