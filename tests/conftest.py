"""Shared test fixtures: where the real datasets live, and small deterministic settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
