"""Fixtures of the fault and abuse tests: a small run folder and a must-not-appear marker."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cnnkit.data.normalization import Normalization
from cnnkit.models import Sequential
from cnnkit.train.checkpoint import save_checkpoint
from cnnkit.train.run_folder import (CHECKPOINT_DIR, MODEL_FILE, WEIGHTS_FILE, model_metadata,
                                     save_weights, write_json)

SPEC = "conv(4,3,padding=same) relu maxpool(2) flatten fc(3)"


@pytest.fixture
def marker(tmp_path) -> Path:
    """A path that must still not exist at the end of the test (proof that no code ran)."""
    path = tmp_path / "CODE_RAN"
    yield path
    assert not path.exists(), "a malicious file ran code"


@pytest.fixture
def small_run(tmp_path) -> Path:
    """RUN/ with model.json, weights.safetensors and two checkpoints (epochs 1 and 2)."""
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    model = Sequential.from_spec(SPEC, "8x8x1")
    save_checkpoint(run / CHECKPOINT_DIR, model=model, epoch=1)
    with torch.no_grad():
        model[0].bias += 1.0
    save_checkpoint(run / CHECKPOINT_DIR, model=model, epoch=2)
    save_weights(model, run / WEIGHTS_FILE)
    write_json(run / MODEL_FILE, model_metadata(model, ["a", "b", "c"],
                                                Normalization((0.5,), (0.25,)), (1, 8, 8)))
    return run


# The quick fuzz and kill tests reuse the harnesses in bench/reliability; make the repository
# root importable also when pytest is started as a plain `pytest` (not `python -m pytest`).
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
