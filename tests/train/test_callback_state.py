"""Callback state in checkpoints: a run resumed across EarlyStopping / ReduceLROnPlateau decisions
ends bitwise equal to an uninterrupted one; mismatched callbacks and old checkpoints."""
import json
import logging

import pytest
import torch
from train_helpers import make_blobs, small_cnn

from cnnkit.errors import CheckpointError
from cnnkit.train.batches import TensorBatches
from cnnkit.train.callbacks import (Callback, EarlyStopping, LambdaCallback, ModelCheckpoint,
                                    ReduceLROnPlateau)
from cnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.trainer import Trainer

EPOCHS = 8


def _loaders():
    x, y = make_blobs(256)
    return (TensorBatches(x, y, batch_size=32, shuffle=True, seed=0),
            TensorBatches(x, y, batch_size=128))


def _monitors(restore_best_weights=False):
    # min_delta=10: no epoch after the first counts as an improvement of val_loss, so the
    # plateau callbacks act on a fixed schedule: lr x0.5 after epochs 3 and 5, stop after 5.
    return [ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_delta=10.0),
            EarlyStopping(monitor="val_loss", patience=4, min_delta=10.0,
                          restore_best_weights=restore_best_weights)]


def _trainer(folder, seed, callbacks):
    torch.manual_seed(seed)
    config = TrainConfig(epochs=EPOCHS, lr=0.05, optimizer="sgd", momentum=0.9,
                         schedule="cosine", precision="fp32", device="cpu")
    return Trainer(small_cnn(dropout=0.2), config, progress=False, checkpoint_dir=folder,
                   callbacks=callbacks)


def _assert_same_end(a: Trainer, b: Trainer):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ([g["lr"] for g in a.optimizer.param_groups]
            == [g["lr"] for g in b.optimizer.param_groups])
    assert a.scheduler.base_lrs == b.scheduler.base_lrs
    assert a.history.epoch == b.history.epoch
    assert a.history.history["loss"] == b.history.history["loss"]


@pytest.mark.parametrize("restore_best_weights", [False, True])
def test_resume_across_plateau_decisions_equals_the_straight_run_bitwise(interrupt_at, tmp_path,
                                                                         restore_best_weights):
    straight_cbs = _monitors(restore_best_weights)
    straight = _trainer(tmp_path / "a", 0, straight_cbs)
    straight.fit(*_loaders())
    # the run did what the test is about: two lr reductions, then an early stop
    assert straight.history.epoch == [1, 2, 3, 4, 5] and straight_cbs[1].stopped_epoch == 5
    assert straight.scheduler.base_lrs == [0.05 * 0.25]

    # Ctrl-C at the start of epoch 3: both callbacks are mid-count (wait = 1) in checkpoint 2
    first = _trainer(tmp_path / "b", 0, [*_monitors(restore_best_weights), interrupt_at(3)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(*_loaders())
    assert load_checkpoint(tmp_path / "b").epoch == 2
    resumed_cbs = _monitors(restore_best_weights)
    resumed = _trainer(tmp_path / "b", 99, resumed_cbs)  # a fresh process: other init, RNG
    resumed.fit(*_loaders(), resume_from=tmp_path / "b")

    _assert_same_end(straight, resumed)
    assert resumed_cbs[1].stopped_epoch == 5
    assert resumed_cbs[0].best == straight_cbs[0].best

    # resuming the finished run: it was early-stopped, so nothing more trains
    again_cbs = _monitors(restore_best_weights)
    again = _trainer(tmp_path / "a", 7, again_cbs)
    again.fit(*_loaders(), resume_from=tmp_path / "a")
    _assert_same_end(straight, again)
    assert again_cbs[1].stopped_epoch == 5


def _checkpoint_with_monitors(folder):
    trainer = _trainer(folder, 0, _monitors())
    trainer.fit(*_loaders(), epochs=1)
    return folder


def test_other_stateful_callbacks_on_resume_are_refused_naming_both_lists(tmp_path):
    folder = _checkpoint_with_monitors(tmp_path)
    given = [EarlyStopping(monitor="val_loss", patience=4)]
    with pytest.raises(CheckpointError, match=(
            r"holds the state of the callbacks \[0:ReduceLROnPlateau, 1:EarlyStopping\], but "
            r"this run was given \[0:EarlyStopping\] \(callbacks with state, in order\)\. "
            r"Resume with the same stateful callbacks in the same order")):
        _trainer(folder, 0, given).fit(*_loaders(), epochs=2, resume_from=folder)
    swapped = [EarlyStopping(monitor="val_loss"), ReduceLROnPlateau(monitor="val_loss")]
    with pytest.raises(CheckpointError, match=r"given \[0:EarlyStopping, 1:ReduceLROnPlateau\]"):
        _trainer(folder, 0, swapped).fit(*_loaders(), epochs=2, resume_from=folder)
    other_metric = [ReduceLROnPlateau(monitor="val_loss"), EarlyStopping(monitor="loss")]
    with pytest.raises(CheckpointError, match=r"EarlyStopping followed 'val_loss' \(mode 'min'\) "
                                              r"in the checkpoint, but this one follows 'loss'"):
        _trainer(folder, 0, other_metric).fit(*_loaders(), epochs=2, resume_from=folder)
    # stateless callbacks (loggers, printers) may come and go
    printer = LambdaCallback(on_epoch_end=lambda t, e, logs: None)
    trainer = _trainer(folder, 0, [printer, *_monitors()])
    trainer.fit(*_loaders(), epochs=2, resume_from=folder)
    assert trainer.history.epoch == [1, 2]


def test_a_checkpoint_without_callback_state_resumes_with_a_warning(tmp_path, caplog):
    folder = _checkpoint_with_monitors(tmp_path)
    meta = json.loads((folder / "last.json").read_text())
    del meta["callbacks"]  # as written before callback states were saved
    (folder / "last.json").write_text(json.dumps(meta))
    trainer = _trainer(folder, 0, _monitors())
    with caplog.at_level(logging.WARNING, logger="cnnkit.train.checkpoint"):
        trainer.fit(*_loaders(), epochs=2, resume_from=folder)
    assert trainer.history.epoch == [1, 2]
    assert ("holds no callback state (written by an older cnnkit): 0:ReduceLROnPlateau, "
            "1:EarlyStopping start afresh") in caplog.text


def test_callback_states_round_trip_through_a_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    stop = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    plateau = ReduceLROnPlateau(patience=1, cooldown=2)
    best = ModelCheckpoint(tmp_path / "best.safetensors")
    stop.best, stop.wait, stop.stopped_epoch = 0.75, 1, None
    stop.best_state = {k: v + 1 for k, v in model.state_dict().items()}
    plateau.best, plateau.wait, plateau.cooldown_counter = 0.5, 0, 2
    best.best, best.wait, best.best_epoch = 0.25, 3, 4
    save_checkpoint(tmp_path, model=model, callbacks=[stop, plateau, best])

    ckpt = load_checkpoint(tmp_path)
    assert list(ckpt.meta["callbacks"]) == ["0:EarlyStopping", "1:ReduceLROnPlateau",
                                            "2:ModelCheckpoint"]
    assert ckpt.meta["callbacks"]["1:ReduceLROnPlateau"] == {
        "monitor": "val_loss", "mode": "min", "best": 0.5, "wait": 0, "cooldown_counter": 2}
    copies = [EarlyStopping(monitor="val_accuracy"), ReduceLROnPlateau(),
              ModelCheckpoint(tmp_path / "best.safetensors")]
    from cnnkit.train.checkpoint import restore_callbacks

    restore_callbacks(ckpt, copies)
    assert (copies[0].best, copies[0].wait, copies[0].stopped_epoch) == (0.75, 1, None)
    assert all(torch.equal(copies[0].best_state[k], stop.best_state[k]) for k in stop.best_state)
    assert (copies[1].best, copies[1].wait, copies[1].cooldown_counter) == (0.5, 0, 2)
    assert (copies[2].best, copies[2].wait, copies[2].best_epoch) == (0.25, 3, 4)


def test_a_callback_state_json_cannot_hold_is_refused_by_name(tmp_path):
    class Odd(Callback):
        def state_dict(self):
            return {"seen": {1, 2}}

    with pytest.raises(TypeError, match=r"callback 0:Odd returned state\['seen'\] = \{1, 2\} "
                                        r"\(set\); a callback state may hold only JSON values"):
        save_checkpoint(tmp_path, model=torch.nn.Linear(2, 2), callbacks=[Odd()])


def test_reduce_lr_on_plateau_cooldown_skips_epochs_after_a_reduction():
    model = torch.nn.Linear(2, 2)
    trainer = type("T", (), {"optimizer": torch.optim.SGD(model.parameters(), lr=1.0),
                             "scheduler": None})()
    cb = ReduceLROnPlateau(patience=1, factor=0.5, cooldown=2)
    lrs = []
    for epoch in range(1, 8):  # the loss never improves after epoch 1
        cb.on_epoch_end(trainer, epoch, {"val_loss": 1.0})
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    # reductions after epochs 2 and 5: epochs 3 and 4 are the cooldown
    assert lrs == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    with pytest.raises(ValueError, match="cooldown must be an int >= 0 \\(epochs\\), got -1"):
        ReduceLROnPlateau(cooldown=-1)
