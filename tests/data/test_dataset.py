"""ImageData and DataSplits: validation, subsets and deterministic stratified splits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.dataset import DataSplits, ImageData
from cnnkit.errors import DataError


def make(n=20, classes=("a", "b"), shape=(1, 4, 4), labels=None, source="tiny"):
    """n images whose first pixel is their index (n <= 256), labels cycling over the classes."""
    images = torch.zeros(n, *shape, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    if labels is None:
        labels = torch.arange(n) % len(classes)
    return ImageData(images, labels, list(classes), source=source)


def test_properties():
    data = make(n=6, classes=("a", "b", "c"), shape=(3, 5, 7))
    assert len(data) == 6
    assert data.num_classes == 3
    assert data.input_shape == (3, 5, 7)
    assert data.class_counts() == {"a": 2, "b": 2, "c": 2}
    assert "6 images 5x7x3" in repr(data)


def test_class_counts_include_empty_classes():
    data = make(n=4, classes=("a", "b", "c"), labels=torch.tensor([0, 0, 2, 0]))
    assert data.class_counts() == {"a": 3, "b": 0, "c": 1}


@pytest.mark.parametrize("images, labels, match", [
    (torch.zeros(2, 1, 3, 3), torch.tensor([0, 1]), "uint8 tensor"),
    (torch.zeros(2, 3, 3, dtype=torch.uint8), torch.tensor([0, 1]), r"\(N, C, H, W\)"),
    (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([0, 1], dtype=torch.int32), "int64"),
    (torch.zeros(3, 1, 3, 3, dtype=torch.uint8), torch.tensor([0, 1]), "3 images but 2 labels"),
    (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([0, 2]),
     r"labels in src: 1 label\(s\) \(at indices \[1\], values \[2\]\) outside \[0, 2\)"),
    (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([-1, 0]), r"values \[-1\]"),
])
def test_validation_errors_name_the_source(images, labels, match):
    with pytest.raises(DataError, match=match) as info:
        ImageData(images, labels, ["x", "y"], source="src")
    assert "src" in str(info.value)


def test_rejects_numpy_and_bad_class_names():
    with pytest.raises(TypeError, match="from_arrays"):
        ImageData(np.zeros((1, 1, 2, 2), np.uint8), torch.tensor([0]), ["a"])
    with pytest.raises(DataError, match="duplicates"):
        ImageData(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.tensor([0]), ["a", "a"])
    with pytest.raises(DataError, match="empty"):
        ImageData(torch.zeros(0, 1, 2, 2, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), [])


def test_subset_keeps_pairs_together():
    data = make(n=10)
    part = data.subset([7, 2])
    assert torch.equal(part.images[0], data.images[7])
    assert torch.equal(part.labels, data.labels[[7, 2]])
    assert part.class_names == data.class_names
    assert len(data.subset(slice(2, 5))) == 3
    assert len(data.subset(range(4))) == 4
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        data.subset([10])


def test_split_sizes_disjoint_and_complete():
    data = make(n=50, classes=("a", "b", "c", "d", "e"))
    rest, held = data.split(0.2, seed=3)
    assert (len(rest), len(held)) == (40, 10)
    ids = torch.cat([rest.images, held.images])[:, 0, 0, 0].tolist()  # first pixel = index
    assert sorted(ids) == list(range(50))
    assert rest.images[:, 0, 0, 0].tolist() == sorted(rest.images[:, 0, 0, 0].tolist())


def test_split_is_stratified():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    data = make(n=100, classes=("a", "b", "c"), labels=labels)
    rest, held = data.split(0.3, seed=0)
    assert held.class_counts() == {"a": 18, "b": 9, "c": 3}
    assert rest.class_counts() == {"a": 42, "b": 21, "c": 7}


def test_stratified_rounding_hits_the_requested_total():
    labels = torch.tensor([0] * 7 + [1] * 7 + [2] * 7)  # 0.5 * 7 = 3.5 per class
    rest, held = make(n=21, classes=("a", "b", "c"), labels=labels).split(0.5)
    assert len(held) == round(0.5 * 21)
    assert sorted(held.class_counts().values()) == [3, 3, 4]


def test_split_is_deterministic_and_seeded():
    data = make(n=40)
    a = data.split(0.25, seed=1)[1].images
    b = data.split(0.25, seed=1)[1].images
    c = data.split(0.25, seed=2)[1].images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unstratified_split():
    rest, held = make(n=30).split(0.1, stratify=False, seed=0)
    assert (len(rest), len(held)) == (27, 3)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.01])
def test_split_refuses_empty_parts(fraction):
    with pytest.raises(ValueError, match="fraction"):
        make(n=10).split(fraction)


def test_data_splits_agree():
    train, test = make(n=10).split(0.2)
    splits = DataSplits(train, test=test)
    assert splits.class_names == ["a", "b"]
    assert splits.input_shape == (1, 4, 4)
    assert list(splits.parts()) == ["train", "test"]


def test_data_splits_reject_disagreements():
    with pytest.raises(DataError, match="same classes"):
        DataSplits(make(classes=("a", "b")), val=make(classes=("a", "c")))
    with pytest.raises(DataError, match=r"4x4x1 \(HxWxC\) but train has 5x5x1"):
        DataSplits(make(shape=(1, 5, 5)), test=make(shape=(1, 4, 4)))
