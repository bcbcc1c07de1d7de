import csv
import json
from types import SimpleNamespace

import pytest
import torch
from train_helpers import make_blobs, small_cnn

from cnnkit.train.batches import TensorBatches
from cnnkit.train.callbacks import (CSVLogger, EarlyStopping, JSONLinesLogger, LambdaCallback,
                                    ModelCheckpoint, ReduceLROnPlateau)
from cnnkit.train.config import TrainConfig
from cnnkit.train.run_folder import load_weights
from cnnkit.train.trainer import Trainer


def _fake_trainer():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return SimpleNamespace(model=model, optimizer=opt, stop_training=False, scheduler=None)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    trainer = _fake_trainer()
    stop = EarlyStopping(monitor="val_loss", patience=2)
    for epoch, loss in enumerate([1.0, 0.8, 0.85, 0.9, 0.7], start=1):
        stop.on_epoch_end(trainer, epoch, {"val_loss": loss})
        if trainer.stop_training:
            break
    assert stop.stopped_epoch == 4 and stop.best == 0.8


def test_early_stopping_ends_a_real_run_and_restores_the_best_weights():
    x, y = make_blobs(128)
    seen = []
    stop = EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True,
                         min_delta=2.0)  # no accuracy gain can reach 2: stops after epoch 2
    record = LambdaCallback(on_epoch_end=lambda t, e, logs: seen.append(
        {k: v.clone() for k, v in t.model.state_dict().items()}))
    trainer = Trainer(small_cnn(), TrainConfig(epochs=10, device="cpu"), progress=False,
                      callbacks=[record, stop])
    history = trainer.fit(TensorBatches(x, y, batch_size=32), TensorBatches(x, y, batch_size=64))
    assert history.epoch == [1, 2]
    assert all(torch.equal(v, seen[0][k]) for k, v in trainer.model.state_dict().items())


def test_reduce_lr_on_plateau_scales_the_rate_and_the_schedule_base():
    trainer = _fake_trainer()
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda s: 1.0)
    cb = ReduceLROnPlateau(patience=1, factor=0.5)
    for epoch, loss in enumerate([1.0, 1.1, 1.2], start=1):
        cb.on_epoch_end(trainer, epoch, {"val_loss": loss})
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert trainer.scheduler.base_lrs[0] == pytest.approx(0.025)
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\), got 2"):
        ReduceLROnPlateau(factor=2)


def test_loggers_and_best_checkpoint_write_what_happened(tmp_path):
    x, y = make_blobs(128)
    callbacks = [CSVLogger(tmp_path / "log.csv"), JSONLinesLogger(tmp_path / "log.jsonl"),
                 ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss")]
    trainer = Trainer(small_cnn(), TrainConfig(epochs=3, device="cpu"), progress=False,
                      callbacks=callbacks)
    history = trainer.fit(TensorBatches(x, y, batch_size=32), TensorBatches(x, y, batch_size=64))
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == pytest.approx(history.history["loss"])
    lines = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["val_accuracy"] for r in lines] == history.history["val_accuracy"]
    best_epoch = callbacks[2].best_epoch
    assert history.history["val_loss"][best_epoch - 1] == min(history.history["val_loss"])
    restored = load_weights(small_cnn(), tmp_path / "best.safetensors")
    assert restored is not None


def test_bad_callback_arguments():
    with pytest.raises(ValueError, match="mode must be 'min', 'max' or 'auto', got 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience must be an int >= 0, got -1"):
        EarlyStopping(patience=-1)
    with pytest.raises(TypeError, match="on_epoch_end must be callable, got 3"):
        LambdaCallback(on_epoch_end=3)


def test_jsonl_logger_that_cannot_write_raises_a_checkpoint_error_naming_the_file(tmp_path):
    from cnnkit.errors import CheckpointError

    blocked = tmp_path / "metrics.jsonl"
    blocked.mkdir()  # a directory where the log file should be: every append fails
    logger = JSONLinesLogger(blocked, append=True)
    with pytest.raises(CheckpointError, match="cannot append epoch 3 to the metrics log"):
        logger.on_epoch_end(None, 3, {"loss": 0.5})
