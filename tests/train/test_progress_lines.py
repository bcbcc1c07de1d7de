"""Progress lines on a non-terminal (every ~10 s, from an injected clock), and the run's notices."""
import io
import logging
import re
from types import SimpleNamespace

import pytest
import torch
from train_helpers import make_blobs, small_cnn

from cnnkit.data.loader import TensorBatches
from cnnkit.train.callbacks import EarlyStopping, ReduceLROnPlateau
from cnnkit.train.config import TrainConfig
from cnnkit.train.progress import EpochProgress, format_eta
from cnnkit.train.trainer import Trainer


class Clock:
    """A clock the test moves by hand: ``clock.now = 12.5``."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _step(bar, clock, at, loss=0.5, acc=0.75):
    clock.now = at
    bar.update(images=32)
    if bar.line_due():
        bar.set_metrics(loss, acc)


def test_a_line_every_interval_with_epoch_step_loss_speed_and_eta():
    clock, out = Clock(), io.StringIO()
    bar = EpochProgress(total=10, epoch=2, epochs=3, clock=clock, stream=out)
    _step(bar, clock, 5.0)
    assert out.getvalue() == ""  # 5 s: nothing yet
    _step(bar, clock, 10.0)  # 2 steps in 10 s: 8 left take 40 s
    _step(bar, clock, 15.0)  # 5 s after the line: none
    _step(bar, clock, 20.5, loss=0.25, acc=None)
    lines = out.getvalue().splitlines()
    assert lines[0] == "epoch 2/3  step 2/10  loss 0.5000  acc 0.7500  6 img/s  ETA 0:00:40"
    assert re.fullmatch(r"epoch 2/3  step 4/10  loss 0\.2500  6 img/s  ETA 0:00:31", lines[1])
    assert len(lines) == 2
    bar.close()


def test_no_lines_when_disabled_or_without_a_length():
    clock, out = Clock(), io.StringIO()
    bar = EpochProgress(total=10, epoch=1, epochs=1, enabled=False, clock=clock, stream=out)
    _step(bar, clock, 60.0)
    assert not bar.line_due() and out.getvalue() == ""
    bar = EpochProgress(total=None, epoch=1, epochs=1, clock=clock, stream=out)
    _step(bar, clock, 120.0)
    assert out.getvalue().startswith("epoch 1/1  step 1  loss 0.5000") and "ETA ?" in out.getvalue()


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match=r"interval must be a number of seconds >= 0, got -1"):
        EpochProgress(total=1, epoch=1, epochs=1, interval=-1)


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.6, "0:01:00"),
                                           (3725.2, "1:02:05"), (float("nan"), "?")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_trainer_writes_lines_to_stderr_when_it_is_not_a_terminal(capsys):
    x, y = make_blobs(128)
    trainer = Trainer(small_cnn(), TrainConfig(epochs=1, device="cpu", schedule="constant"),
                      progress=None, progress_interval=0)  # interval 0: a line every step
    trainer.fit(TensorBatches(x, y, batch_size=32, shuffle=True))
    captured = capsys.readouterr()
    steps = re.findall(r"^epoch 1/1  step (\d)/4  loss \d\.\d{4}  acc \d\.\d{4}  \d+ img/s  "
                       r"ETA \d:\d\d:\d\d$", captured.err, flags=re.M)
    assert steps == ["1", "2", "3", "4"] and captured.out == ""


def _lr_notices(caplog, schedule, epochs, n):
    x, y = make_blobs(n)
    trainer = Trainer(small_cnn(), TrainConfig(epochs=epochs, device="cpu", schedule=schedule),
                      progress=False)
    with caplog.at_level(logging.INFO, logger="cnnkit.train.events"):
        trainer.fit(TensorBatches(x, y, batch_size=32))
    return [r.getMessage() for r in caplog.records if r.name == "cnnkit.train.events"]


def test_the_step_schedule_says_when_it_drops_the_learning_rate(caplog):
    # 2 epochs x 4 steps: x0.1 after 50% (step 4) and 75% (step 6) of the steps
    assert _lr_notices(caplog, "step", 2, 128) == [
        "after step 4 (epoch 1): learning rate dropped 0.003 -> 0.0003 (step schedule)",
        "after step 6 (epoch 2): learning rate dropped 0.0003 -> 3e-05 (step schedule)"]


def test_a_smooth_cosine_decay_says_nothing(caplog):
    assert _lr_notices(caplog, "cosine", 1, 40 * 32) == []  # 40 steps: no 2x step above 1%


def test_early_stopping_says_when_it_stops(caplog):
    trainer = SimpleNamespace(stop_training=False)
    stop = EarlyStopping(monitor="val_loss", patience=2)
    with caplog.at_level(logging.INFO, logger="cnnkit.train.events"):
        for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7], start=1):
            stop.on_epoch_end(trainer, epoch, {"val_loss": loss})
    assert trainer.stop_training
    assert [r.getMessage() for r in caplog.records] == [
        "early stopping at epoch 4: val_loss did not improve for 2 epochs (best 0.5000)"]


def test_reduce_lr_on_plateau_says_when_it_drops_the_rate(caplog):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    trainer = SimpleNamespace(optimizer=optimizer, scheduler=None)
    plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    with caplog.at_level(logging.INFO, logger="cnnkit.train.events"):
        for epoch, loss in enumerate([1.0, 1.0, 0.5], start=1):
            plateau.on_epoch_end(trainer, epoch, {"val_loss": loss})
    assert optimizer.param_groups[0]["lr"] == 0.05
    assert [r.getMessage() for r in caplog.records] == [
        "epoch 2: val_loss plateaued for 1 epochs, learning rate dropped 0.1 -> 0.05"]
