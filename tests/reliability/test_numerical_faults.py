"""NaN/inf inputs, an exploding learning rate and a diverging loss: detected, reported, and the
last good checkpoint kept (intact, loadable, finite)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnkit.cli import main
from cnnkit.data.arrays import from_arrays
from cnnkit.errors import DataError, TrainingError
from cnnkit.train.callbacks import LambdaCallback
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.trainer import Trainer


def _blobs(n: int = 64, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of (8, 1, 8, 8) images whose class (0..3) is a bright quadrant."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for k in range(4):
        r, c = divmod(k, 2)
        x[y == k, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 1.0
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 4))  # (N, 4, 8, 8) -> (N, 256) -> (N, 4)


def _trainer(tmp_path, **kwargs) -> Trainer:
    config = TrainConfig(epochs=4, lr=1e-2, schedule="constant", device="cpu")
    return Trainer(_net(), config, checkpoint_dir=tmp_path / "ckpt", progress=False,
                   log_every=1, **kwargs)


def _assert_good_checkpoint(folder, epoch: int) -> None:
    ckpt = load_checkpoint(folder)
    assert ckpt.epoch == epoch
    assert all(torch.isfinite(t).all() for t in ckpt.prefixed("model.").values())


def test_exploding_learning_rate_is_stopped_and_the_last_checkpoint_kept(tmp_path):
    def explode(trainer, epoch):
        if epoch == 3:
            trainer.scheduler.base_lrs = [1e30 for _ in trainer.scheduler.base_lrs]

    trainer = _trainer(tmp_path, callbacks=[LambdaCallback(on_epoch_begin=explode)])
    with pytest.raises(TrainingError) as err:
        trainer.fit(_blobs())
    message = str(err.value)
    assert "at epoch 3" in message and "diverged" in message
    assert "last good checkpoint (epoch 2)" in message and "Lower the learning rate" in message
    _assert_good_checkpoint(tmp_path / "ckpt", epoch=2)


def test_nan_in_a_batch_is_detected_and_the_last_checkpoint_kept(tmp_path):
    batches = _blobs()

    class PoisonedAtEpoch3:
        """A loader whose third pass has a NaN pixel (a data fault mid-run)."""

        def __init__(self):
            self.epoch = 0

        def __len__(self):
            return len(batches)

        def __iter__(self):
            self.epoch += 1
            for i, (x, y) in enumerate(batches):
                if self.epoch == 3 and i == 2:
                    x = x.clone()
                    x[0, 0, 0, 0] = float("nan")
                yield x, y

    with pytest.raises(TrainingError, match=r"loss became nan at epoch 3"):
        _trainer(tmp_path).fit(PoisonedAtEpoch3())
    _assert_good_checkpoint(tmp_path / "ckpt", epoch=2)


def test_an_epoch_ending_in_overflowed_weights_is_not_saved_as_good(tmp_path):
    """The last step of epoch 2 runs with an overflowing learning rate: its loss (computed
    before the update) is finite, the weights after it are not. Epoch 2 must not be saved."""
    steps_per_epoch = len(_blobs())

    def overflow_last_step(trainer, step, logs):
        if step == 2 * steps_per_epoch - 1:  # after the second-to-last step of epoch 2
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e45  # inf in float32

    trainer = _trainer(tmp_path, callbacks=[LambdaCallback(on_batch_end=overflow_last_step)])
    with pytest.raises(TrainingError, match=r"NaN or inf at epoch 2.*last good checkpoint "
                                            r"\(epoch 1\)"):
        trainer.fit(_blobs())
    _assert_good_checkpoint(tmp_path / "ckpt", epoch=1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_are_refused_when_loading(bad):
    images = np.random.default_rng(0).random((4, 8, 8, 1))
    images[2, 3, 3, 0] = bad
    with pytest.raises(DataError, match="NaN or infinite"):
        from_arrays(images, np.array([0, 1, 0, 1]))


def test_non_finite_pixels_in_a_data_file_stop_cnnkit_train(tmp_path, capsys):
    images = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    images[5, 0, 0] = np.nan
    np.savez(tmp_path / "data.npz", x=images, y=np.arange(20) % 2)
    code = main(["train", "--data", str(tmp_path / "data.npz"), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert "NaN or infinite" in capsys.readouterr().err


NO_BN_MODEL = "conv(16,3,padding=same) relu conv(32,3,padding=same) relu maxpool(2) fc(64) relu fc(10)"


def test_huge_learning_rate_through_the_cli_exits_2_with_advice(tmp_path, capsys):
    run = tmp_path / "run"
    # a net without batch norm (BN keeps even lr 1e12 finite for a while)
    code = main(["train", "--model", NO_BN_MODEL, "--optimizer", "sgd", "--lr", "1e12",
                 "--epochs", "2",
                 "--out", str(run), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "diverged" in err and "Lower the learning rate" in err
