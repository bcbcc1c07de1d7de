"""A small untrained run folder (random weights, real normalisation) for the export tests."""
from __future__ import annotations

import pytest

from cnnkit.data.normalization import Normalization
from cnnkit.models import Sequential
from cnnkit.train.run_folder import (MODEL_FILE, WEIGHTS_FILE, model_metadata, save_weights,
                                     write_json)

SPEC = "conv(4,3,padding=same) relu maxpool(2) conv(6,3) relu flatten fc(3)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """RUN/ with model.json + weights.safetensors: 8x8 grayscale, 3 classes, mean 0.3 std 0.4."""
    run = tmp_path_factory.mktemp("export") / "run"
    run.mkdir()
    model = Sequential.from_spec(SPEC, "8x8x1")
    save_weights(model, run / WEIGHTS_FILE)
    write_json(run / MODEL_FILE, model_metadata(model, ["cat", "dog", "eel"],
                                                Normalization((0.3,), (0.4,)), (1, 8, 8)))
    return run


@pytest.fixture
def two_threads():
    """PyTorch on 2 intra-op threads for the test, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
