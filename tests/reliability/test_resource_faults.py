"""Disk full while writing a checkpoint or the weights leaves the previous files intact (and
no temp files behind); out of memory on a too-large batch says to use a smaller batch."""
from __future__ import annotations

import errno
import os
import subprocess

import pytest
import torch
from safetensors.torch import save_file as real_save_file
from torch import nn

from cnnkit.errors import CheckpointError, TrainingError
from cnnkit.models import Sequential
from cnnkit.train import checkpoint as checkpoint_module
from cnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.run_folder import load_weights, save_weights
from cnnkit.train.trainer import Trainer

SPEC = "conv(4,3,padding=same) relu maxpool(2) flatten fc(3)"


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return Sequential.from_spec(SPEC, "8x8x1")


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


def _half_then_enospc(tensors, filename, metadata=None):
    """Write half the file, then fail like a full disk."""
    real_save_file(tensors, filename, metadata=metadata)
    with open(filename, "r+b") as f:
        f.truncate(os.path.getsize(filename) // 2)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    first, second = _model(0), _model(1)
    save_checkpoint(tmp_path, model=first, epoch=1)
    monkeypatch.setattr(checkpoint_module, "save_file", _half_then_enospc)
    with pytest.raises(CheckpointError, match=r"epoch-2 checkpoint.*No space left.*intact.*"
                                              r"--resume"):
        save_checkpoint(tmp_path, model=second, epoch=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]
    ckpt = load_checkpoint(tmp_path)
    restored = _model(2)
    restored.load_state_dict(ckpt.prefixed("model."))
    assert ckpt.epoch == 1 and _same(restored, first)


def test_disk_full_while_writing_weights_keeps_the_old_weights(tmp_path, monkeypatch):
    from cnnkit.run import folder as run_folder

    path = tmp_path / "weights.safetensors"
    save_weights(_model(0), path)
    monkeypatch.setattr(run_folder, "save_file", _half_then_enospc)
    with pytest.raises(CheckpointError, match="No space left.*intact"):
        save_weights(_model(1), path)
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]
    assert _same(load_weights(_model(2), path), _model(0))


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 160 KiB tmpfs (needs root; skipped elsewhere)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount_point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_really_full_filesystem_keeps_the_previous_checkpoint(tiny_filesystem):
    """The model's checkpoint is ~100 KB: the first fits, the second needs room for two."""
    torch.manual_seed(0)
    big = Sequential.from_spec("flatten fc(400) fc(3)", "8x8x1")  # ~26k parameters
    save_checkpoint(tiny_filesystem, model=big, epoch=1)
    expected = {k: v.clone() for k, v in big.state_dict().items()}
    with torch.no_grad():
        for p in big.parameters():
            p.add_(1.0)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(tiny_filesystem, model=big, epoch=2)
    assert not [p.name for p in tiny_filesystem.iterdir() if p.name.endswith(".tmp")]
    ckpt = load_checkpoint(tiny_filesystem)
    assert ckpt.epoch == 1
    assert all(torch.equal(ckpt.tensors[f"model.{k}"], v) for k, v in expected.items())


class RunsOutOfMemory(nn.Module):
    """A real module whose forward fails the way CUDA does on a batch that is too large."""

    def __init__(self, error: Exception):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.error = error

    def forward(self, x):
        if len(x) > 2:
            raise self.error
        return self.linear(x)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 21474836480 bytes. Error code 12 (Cannot "
                 "allocate memory)"),
])
def test_out_of_memory_suggests_a_smaller_batch(tmp_path, error):
    config = TrainConfig(epochs=1, batch_size=8, device="cpu")
    trainer = Trainer(RunsOutOfMemory(error), config, progress=False)
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    with pytest.raises(TrainingError, match=r"batch.size.*8.*smaller|smaller.*batch"):
        trainer.fit(batches)
