"""Built-in datasets: scikit-learn digits and generated shapes, deterministic stratified splits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.builtin import builtin_names, load_builtin


def test_names():
    assert builtin_names() == ["digits", "shapes"]
    with pytest.raises(ValueError, match=r"unknown built-in dataset 'mnist'; choose one of"):
        load_builtin("mnist")


def test_digits():
    from sklearn.datasets import load_digits

    splits = load_builtin("digits", test_fraction=0.25)
    assert splits.input_shape == (1, 8, 8)
    assert splits.class_names == [str(k) for k in range(10)]
    assert len(splits.train) + len(splits.test) == 1797
    assert len(splits.test) == round(0.25 * 1797)
    raw = load_digits().images
    # every value is one of the 17 levels 0..16 scaled to 0..255
    levels = {round(v * 255 / 16) for v in range(17)}
    assert set(splits.train.images.unique().tolist()) <= levels
    assert int(splits.train.images.max()) == 255 and raw.max() == 16
    # stratified: each class keeps about the same share of the test split
    test_share = np.array(list(splits.test.class_counts().values())) / len(splits.test)
    train_share = np.array(list(splits.train.class_counts().values())) / len(splits.train)
    assert np.abs(test_share - train_share).max() < 0.01


def test_digits_split_is_deterministic():
    a, b = load_builtin("digits", seed=1), load_builtin("digits", seed=1)
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.test.images, load_builtin("digits", seed=2).test.images)


def test_shapes():
    splits = load_builtin("shapes")
    assert splits.class_names == ["circle", "square", "triangle", "cross"]
    assert splits.input_shape == (1, 28, 28)
    assert splits.train.class_counts() == {name: 320 for name in splits.class_names}
    assert torch.equal(splits.train.images, load_builtin("shapes").train.images)
    images = splits.train.images.float()
    bright = (images > 100).flatten(1).sum(1)  # (N, 1, H, W) -> (N, 1*H*W) -> (N,)
    assert int(bright.min()) >= 9  # every image shows a shape
    # the classes look different: a cross covers less of its box than a square
    by_class = [bright[splits.train.labels == k].float().mean() for k in range(4)]
    assert by_class[1] > by_class[3]
