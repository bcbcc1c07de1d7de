"""Integration: ``--data fashion-mnist`` finds the real files in ``--data-dir`` / ``$CNNKIT_DATA``.

Reads ``../shared/data/fashion-mnist`` (``CNNKIT_SHARED_DATA`` overrides); skips with the reason
when the four IDX files are not there. Nothing is downloaded (``download=False``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cnnkit.data.open import open_data

SHARED_DATA = Path(os.environ.get("CNNKIT_SHARED_DATA",
                                  Path(__file__).resolve().parents[3] / "shared" / "data"))

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def shared_dataset(name: str) -> None:
    """Skip the test, saying which files are missing, unless ``SHARED_DATA/name`` has all four."""
    missing = [f for f in FILES if not (SHARED_DATA / name / f).exists()]
    if missing:
        pytest.skip(f"{name} is not in {SHARED_DATA / name} (missing: {', '.join(missing)}); "
                    "set CNNKIT_SHARED_DATA to the folder that holds it")


@pytest.fixture(scope="module")
def fashion_splits():
    shared_dataset("fashion-mnist")
    return open_data("fashion-mnist", data_dir=SHARED_DATA, download=False, progress=False)


def test_fashion_mnist_reads_the_published_splits_from_data_dir(fashion_splits):
    train, test = fashion_splits.train, fashion_splits.test
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.class_names == CLASSES and test.class_names == CLASSES
    # the published sets are balanced: 6000 training and 1000 test images per class
    assert torch.bincount(train.labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [1000] * 10
    assert fashion_splits.val is None  # val_split=0 by default


def test_fashion_mnist_is_found_through_cnnkit_data_as_mnist_is(fashion_splits, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(SHARED_DATA))
    through_env = open_data("fashion-mnist", download=False, progress=False)
    assert torch.equal(through_env.test.images, fashion_splits.test.images)
    assert torch.equal(through_env.test.labels, fashion_splits.test.labels)
