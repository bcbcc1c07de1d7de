"""open_data on every kind of --data spec (tiny files from conftest), val split, errors."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.open import open_data
from cnnkit.errors import DataError


def _same(data, images, labels):
    assert torch.equal(data.images, torch.from_numpy(images))
    assert torch.equal(data.labels, torch.from_numpy(labels))


def test_idx_folder(idx_dir):
    splits = open_data(idx_dir.path)
    _same(splits.train, idx_dir.images["train"], idx_dir.labels["train"])
    _same(splits.test, idx_dir.images["test"], idx_dir.labels["test"])
    assert splits.val is None and splits.class_names == ["0", "1", "2"]


def test_idx_folder_without_test_files_and_a_single_idx_file(idx_dir):
    for f in idx_dir.path.glob("t10k-*"):
        f.unlink()
    splits = open_data(idx_dir.path / "train-images-idx3-ubyte.gz")
    assert splits.test is None
    _same(splits.train, idx_dir.images["train"], idx_dir.labels["train"])


@pytest.mark.parametrize("fixture", ["cifar10_py_dir", "cifar10_tar_gz", "cifar100_py_dir",
                                     "cifar10_bin_dir"])
def test_cifar_folders_and_archives(request, fixture):
    written = request.getfixturevalue(fixture)
    splits = open_data(str(written.path))
    _same(splits.train, written.images["train"], written.labels["train"])
    _same(splits.test, written.images["test"], written.labels["test"])
    assert splits.class_names == written.class_names


def test_cifar_batches_folder_itself(cifar10_py_dir):
    splits = open_data(cifar10_py_dir.path / "cifar-10-batches-py")
    assert len(splits.train) == 10 and len(splits.test) == 3


def test_image_folder_with_size_and_channels(image_folder):
    splits = open_data(image_folder.path)
    _same(splits.train, image_folder.images["all"], image_folder.labels["all"])
    assert splits.class_names == image_folder.class_names
    gray = open_data(image_folder.path, size=4, channels=1)
    assert gray.input_shape == (1, 4, 4)


def test_image_folder_with_train_and_val(tmp_path, image_writer):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 1)):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(n):
                image_writer(tmp_path / split / name / f"{i}.png",
                             rng.integers(0, 256, (1, 5, 5), dtype=np.uint8))
    splits = open_data(tmp_path, val_split=0.5)  # the folder's own val wins
    assert (len(splits.train), len(splits.val), splits.test) == (6, 2, None)


def test_npz_npy_and_csv(csv_dataset, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 1, 3, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "d.npz", x_train=images, y_train=labels, x_test=images[:3], y_test=labels[:3])
    splits = open_data(tmp_path / "d.npz")
    _same(splits.train, images, labels)
    _same(splits.test, images[:3], labels[:3])
    np.savez(tmp_path / "one.npz", x=images, y=labels)
    assert open_data(tmp_path / "one.npz").test is None
    np.save(tmp_path / "x_small.npy", images)
    np.save(tmp_path / "y_small.npy", labels)
    _same(open_data(tmp_path / "x_small.npy").train, images, labels)
    _same(open_data(f"{tmp_path / 'x_small.npy'},{tmp_path / 'y_small.npy'}").train, images, labels)
    csv = open_data(csv_dataset.path)
    _same(csv.train, csv_dataset.images["all"], csv_dataset.labels["all"])


def test_npy_without_a_labels_file_says_how_to_name_it(tmp_path):
    np.save(tmp_path / "pictures.npy", np.zeros((2, 1, 3, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="no labels file beside .*pictures.npy.*'images.npy,labels.npy'"):
        open_data(tmp_path / "pictures.npy")


def test_builtin_name():
    splits = open_data("shapes")
    assert splits.input_shape == (1, 28, 28) and splits.test is not None


def test_named_dataset_from_the_data_dir(tmp_path, idx_writer):
    rng = np.random.default_rng(0)
    (tmp_path / "mnist").mkdir()
    for prefix, n in (("train", 20), ("t10k", 10)):
        idx_writer(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte.gz",
                   rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz=True)
        idx_writer(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte.gz",
                   (np.arange(n) % 10).astype(np.uint8), gz=True)
    splits = open_data("mnist", data_dir=tmp_path, download=False, val_split=0.5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 10, 10)
    assert sorted(splits.val.labels.tolist()) == list(range(10))  # stratified: one per class


def test_val_split_is_stratified_and_seeded():
    a = open_data("digits", val_split=0.1, seed=3)
    b = open_data("digits", val_split=0.1, seed=3)
    c = open_data("digits", val_split=0.1, seed=4)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.val.images, c.val.images)
    train_counts = torch.bincount(a.train.labels, minlength=10) + torch.bincount(a.val.labels, minlength=10)
    val_counts = torch.bincount(a.val.labels, minlength=10)
    assert torch.all((val_counts - 0.1 * train_counts).abs() <= 1)
    assert len(a.train) + len(a.val) == len(open_data("digits", seed=3).train)


def test_tensor_sources_are_resized_and_converted(idx_dir):
    splits = open_data(idx_dir.path, size=(10, 12), channels=3, resize="stretch")
    assert splits.train.images.shape == (12, 3, 10, 12) and splits.test.images.shape == (6, 3, 10, 12)
    # The folder reader resizes with Pillow's bilinear filter: agree with it within one level.
    expected = np.stack([np.asarray(Image.fromarray(img[0]).resize((12, 10), Image.Resampling.BILINEAR))
                         for img in idx_dir.images["train"]])
    assert np.abs(splits.train.images[:, 1].numpy().astype(int) - expected).max() <= 1
    assert torch.equal(splits.train.images[:, 0], splits.train.images[:, 2])
    assert torch.equal(splits.train.labels, torch.from_numpy(idx_dir.labels["train"]))
    assert open_data(idx_dir.path, size=(5, 6), channels=1).input_shape == (1, 5, 6)


def test_rgb_to_gray_uses_itu_601_luma(cifar10_py_dir):
    gray = open_data(cifar10_py_dir.path, channels=1).test.images
    rgb = cifar10_py_dir.images["test"].astype(np.float64)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert np.abs(gray[:, 0].numpy().astype(np.float64) - luma).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("resize, inside", [("crop", (slice(0, 8), slice(0, 8))),
                                            ("pad", (slice(2, 6), slice(0, 8)))])
def test_crop_fills_and_pad_letterboxes(tmp_path, resize, inside):
    images = np.full((2, 1, 4, 8), 200, dtype=np.uint8)  # wide white images
    np.savez(tmp_path / "wide.npz", x=images, y=np.array([0, 1]))
    out = open_data(tmp_path / "wide.npz", size=8, resize=resize).train.images[0, 0]
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[inside] = True
    assert torch.all(out[mask] == 200) and torch.all(out[~mask] == 0)


def test_bad_resize_options_name_the_argument(idx_dir):
    with pytest.raises(ValueError, match="resize must be one of .*got 'squash'"):
        open_data(idx_dir.path, size=8, resize="squash")
    with pytest.raises(ValueError, match="channels must be None .* got 4"):
        open_data(idx_dir.path, channels=4)


@pytest.mark.parametrize("spec, hint", [("minst", "Did you mean 'mnist'"),
                                        ("digitz", "Did you mean 'digits'"),
                                        ("no/such/place", "Accepted: a built-in dataset")])
def test_unknown_spec_lists_what_is_accepted(spec, hint):
    with pytest.raises(DataError, match=rf"--data '{spec}' is not an existing file or folder.*{hint}"):
        open_data(spec)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="has a type cnnkit cannot read; give a .npz, .npy, .csv"):
        open_data(tmp_path / "notes.txt")


def test_bad_val_split_and_spec_type():
    with pytest.raises(ValueError, match=r"val_split must be in \[0, 1\), got 1.0"):
        open_data("digits", val_split=1.0)
    with pytest.raises(TypeError, match="data must be a path or a dataset name"):
        open_data(42)


def test_logs_what_was_found(caplog, idx_dir):
    with caplog.at_level(logging.INFO, logger="cnnkit.data.open"):
        open_data(idx_dir.path)
    assert "train: 12 images 5x6x1 (HxWxC), 3 classes" in caplog.text
