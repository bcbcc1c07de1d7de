"""Shared test fixtures: where the real datasets live, and small deterministic settings."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.train.callbacks import Callback

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CNNKIT_SHARED_DATA", REPO.parent / "shared" / "data"))

# One thread per test process: CI runs two xdist workers on two cores.
torch.set_num_threads(1)


def shared_dataset(name: str, *files: str) -> Path:
    """Path of ``../shared/data/<name>``, or skip the test with the reason when it is missing."""
    folder = SHARED_DATA / name
    missing = [f for f in files if not (folder / f).exists()]
    if not folder.is_dir() or missing:
        pytest.skip(f"{name} is not in {folder} (missing: {missing or 'the folder'}); "
                    "set CNNKIT_SHARED_DATA to the folder that holds it")
    return folder


@pytest.fixture
def mnist_dir() -> Path:
    return shared_dataset("mnist", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _wait_for_background_curves():
    """``cnnkit train`` draws curves.png in a background process: let it finish inside the test
    that started it, so it neither competes with the next test nor writes into a removed folder."""
    yield
    import sys

    job = sys.modules.get("cnnkit.viz.curves_job")  # imported only by a run that started one
    if job is not None:
        job.wait_all(timeout=120)



class InterruptAt(Callback):
    """Raises KeyboardInterrupt (a Ctrl-C) at the start of ``epoch``: the checkpoint of the
    epoch before is on disk, so the run can be resumed from it."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture
def interrupt_at():
    """``interrupt_at(3)``: a callback that interrupts a training run at the start of epoch 3."""
    return InterruptAt


def _write_colour_squares(root: Path, *, size: int, per_class: int) -> Path:
    """An image folder of 3 classes (red, green, blue) x ``per_class`` RGB ``size``x``size`` PNGs:
    a bright square of the class colour on dark noise, 2 pixels from each border."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            pixels[2:size - 2, 2:size - 2, k] = 220
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def colour_squares():
    """``colour_squares(root, size=12, per_class=10)`` writes that image folder and returns it."""
    return _write_colour_squares
