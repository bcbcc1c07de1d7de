"""The Trainer on plain torch models and tensors: learning, NaN stops, resume, precision, EMA."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_helpers import make_blobs, small_cnn

from cnnkit.errors import TrainingError
from cnnkit.train.batches import TensorBatches
from cnnkit.train.callbacks import JSONLinesLogger
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.trainer import Trainer


def _loaders(x, y, batch_size=32, seed=0):
    return (TensorBatches(x, y, batch_size=batch_size, shuffle=True, seed=seed),
            TensorBatches(x, y, batch_size=128))


def test_training_reduces_the_loss_and_learns_the_blobs(blobs):
    x, y = blobs
    trainer = Trainer(small_cnn(), TrainConfig(epochs=4, lr=1e-2, device="cpu"), progress=False)
    history = trainer.fit(*_loaders(x, y))
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["val_accuracy"][-1] > 0.9
    held_out = make_blobs(200, seed=7)
    assert trainer.evaluate(TensorBatches(*held_out, batch_size=64))["accuracy"] > 0.9
    assert history.epoch == [1, 2, 3, 4]


def test_works_with_a_torch_dataloader(blobs):
    x, y = blobs
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32,
                                         shuffle=True)
    trainer = Trainer(small_cnn(), TrainConfig(epochs=3, lr=1e-2, device="cpu"), progress=False)
    history = trainer.fit(loader)
    assert history.history["accuracy"][-1] > 0.85
    probs = trainer.predict_proba(loader)
    assert probs.shape == (len(x), 4) and torch.allclose(probs.sum(1), torch.ones(len(x)))


class _PoisonSecondEpoch:
    """A loader whose images turn NaN in the second epoch (a model that diverges)."""

    def __init__(self, x, y):
        self.inner = TensorBatches(x, y, batch_size=64, shuffle=True)

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        for x, y in self.inner:
            yield (x * float("nan") if self.epoch == 1 else x), y


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(blobs, tmp_path):
    x, y = blobs
    trainer = Trainer(small_cnn(), TrainConfig(epochs=3, device="cpu"), progress=False,
                      checkpoint_dir=tmp_path, log_every=2)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2.*last good checkpoint "
                                            r"\(epoch 1\).*Lower the learning rate"):
        trainer.fit(_PoisonSecondEpoch(x, y))
    assert load_checkpoint(tmp_path).epoch == 1


def _resumable_trainer(tmp_path, seed, callbacks=()):
    torch.manual_seed(seed)
    config = TrainConfig(epochs=4, lr=5e-3, optimizer="adamw", weight_decay=1e-2,
                         schedule="onecycle", ema=0.9, grad_clip=1.0, device="cpu")
    return Trainer(small_cnn(dropout=0.3), config, progress=False, checkpoint_dir=tmp_path,
                   callbacks=[JSONLinesLogger(tmp_path / "m.jsonl", append=True), *callbacks])


def test_interrupted_and_resumed_equals_uninterrupted_bitwise(interrupt_at, blobs, tmp_path):
    x, y = blobs
    straight = _resumable_trainer(tmp_path / "a", seed=0)
    straight.fit(*_loaders(x, y))

    torch.manual_seed(0)  # same start, then "Ctrl-C" at the start of epoch 3
    first = _resumable_trainer(tmp_path / "b", seed=0, callbacks=[interrupt_at(3)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(*_loaders(x, y))
    resumed = _resumable_trainer(tmp_path / "b", seed=99)  # a fresh process: other init, RNG
    resumed.fit(*_loaders(x, y), resume_from=tmp_path / "b")

    for a, b in ((straight.model, resumed.model), (straight.eval_model, resumed.eval_model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert resumed.history.epoch == [1, 2, 3, 4]
    assert resumed.history.history["loss"] == straight.history.history["loss"]
    lines = [json.loads(s) for s in (tmp_path / "b" / "m.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]


def test_same_seed_same_weights_on_cpu(blobs):
    x, y = blobs
    states = []
    for _ in range(2):
        torch.manual_seed(5)
        trainer = Trainer(small_cnn(dropout=0.2), TrainConfig(epochs=2, device="cpu"),
                          progress=False)
        trainer.fit(*_loaders(x, y, seed=5))
        states.append(trainer.model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_gradient_clipping_bounds_the_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(epochs=1, lr=1.0, optimizer="sgd", momentum=0.0, schedule="constant",
                         grad_clip=1e-3, device="cpu")
    x, y = make_blobs(16)
    Trainer(model, config, progress=False).fit(TensorBatches(x * 100, y, batch_size=16))
    step = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert step.item() == pytest.approx(1e-3, rel=1e-3)  # lr * clip, the gradient being huge


def test_bf16_autocast_and_channels_last_train_on_cpu(blobs):
    x, y = blobs
    config = TrainConfig(epochs=3, lr=1e-2, precision="bf16", channels_last=True, device="cpu")
    trainer = Trainer(small_cnn(), config, progress=False)
    assert trainer.precision.dtype == torch.bfloat16
    history = trainer.fit(*_loaders(x, y))
    assert history.history["val_accuracy"][-1] > 0.85


def test_fp16_on_cpu_falls_back_to_fp32_with_a_warning(caplog):
    trainer = Trainer(small_cnn(), TrainConfig(precision="fp16", device="cpu"), progress=False)
    assert trainer.precision.dtype is None
    assert "not supported on cpu" in caplog.text


def test_flip_tta_averages_the_image_and_its_mirror(blobs):
    x, _ = blobs
    model = small_cnn().eval()
    trainer = Trainer(model, TrainConfig(device="cpu", precision="fp32"), progress=False)
    probs = trainer.predict_proba([x[:10]], tta=True)
    with torch.no_grad():
        expected = (F.softmax(model(x[:10]), 1) + F.softmax(model(x[:10].flip(3)), 1)) / 2
    assert torch.allclose(probs, expected, atol=1e-6)


def test_softmax_ending_model_trains_on_log_probabilities(blobs):
    x, y = blobs
    model = nn.Sequential(small_cnn(), nn.Softmax(dim=1))
    trainer = Trainer(model, TrainConfig(epochs=3, lr=1e-2, device="cpu", precision="fp32"),
                      progress=False)
    with torch.no_grad():
        out = model(x[:8])
    expected = F.nll_loss(torch.log(out), y[:8])
    assert trainer.loss_fn(out, y[:8]).item() == pytest.approx(expected.item(), rel=1e-5)
    trainer.fit(*_loaders(x, y))
    probs = trainer.predict_proba([x[:8]])
    with torch.no_grad():
        assert torch.allclose(probs, model(x[:8]), atol=1e-6)  # no second softmax


def test_label_smoothing_and_squared_error_configs_train(blobs):
    x, y = blobs
    for loss, smoothing in (("cross_entropy", 0.1), ("squared_error", 0.0)):
        config = TrainConfig(epochs=3, lr=1e-2, loss=loss, label_smoothing=smoothing,
                             device="cpu")
        history = Trainer(small_cnn(), config, progress=False).fit(*_loaders(x, y))
        assert history.history["val_accuracy"][-1] > 0.8, loss


def test_bad_inputs():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        Trainer("lenet5")
    trainer = Trainer(small_cnn(), TrainConfig(device="cpu"), progress=False)
    with pytest.raises(ValueError, match="train_loader must be a non-empty iterable"):
        trainer.fit([])
    with pytest.raises(ValueError, match="no checkpoint_dir"):
        trainer.save_checkpoint()


def test_progress_bar_shows_on_request(blobs, capsys):
    x, y = blobs
    Trainer(small_cnn(), TrainConfig(epochs=1, device="cpu"), progress=True, log_every=2).fit(
        TensorBatches(x, y, batch_size=64))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "img_s" in err
