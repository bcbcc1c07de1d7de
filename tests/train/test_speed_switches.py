"""Every speed switch keeps training correct: the loss curve with it matches the curve without it.

Switches: ``precision="auto"`` (bf16 autocast where native; ``fit``'s default), the fused
optimizer kernel (``TrainConfig.fused_optimizer``, on by default), ``channels_last`` and the
malloc tuning (``TrainConfig.tune_allocator``, on by default).
No timing assertions: the speed-ups are measured in bench/ (bench/results/speed.md).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.train import Trainer, TrainConfig
from cnnkit.train.batches import TensorBatches
from cnnkit.train.device import native_bf16, resolve_precision, use_fused_optimizer


def _data(n: int = 256):
    """An easy 10-class task on 12x12 images: the class sets the brightness of one row."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.rand(n, 1, 12, 12, generator=g) * 0.3
    x[torch.arange(n), 0, y + 1, :] += 0.7
    return x, y


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),  # -> (N, 8, 5, 5)
                         nn.Flatten(), nn.Linear(200, 32), nn.ReLU(), nn.Linear(32, 10))


def _losses(steps: int = 24, **settings) -> list[float]:
    """Per-step training losses of the small net under ``settings`` (TrainConfig fields)."""
    x, y = _data()
    config = TrainConfig(device="cpu", batch_size=32, epochs=3, schedule="constant",
                         lr=settings.pop("lr", 1e-2), **settings)
    trainer = Trainer(_net(), config, progress=False, log_every=1)
    losses = []
    for xb, yb in TensorBatches(x, y, batch_size=32, shuffle=True, seed=0):
        loss, _ = trainer._train_step(*trainer._to_device(xb, yb))
        losses.append(loss.item())
    for xb, yb in TensorBatches(x, y, batch_size=32, shuffle=True, seed=1):
        loss, _ = trainer._train_step(*trainer._to_device(xb, yb))
        losses.append(loss.item())
    return losses[:steps]


# ------------------------------------------------------------------ precision="auto"

def test_auto_precision_is_bf16_exactly_where_native():
    cpu = torch.device("cpu")
    expected = "bf16" if native_bf16(cpu) else "fp32"
    assert resolve_precision("auto", cpu).name == expected
    assert TrainConfig(precision="auto").precision == "auto"


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="'auto'.*got 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")


def test_bf16_autocast_follows_the_fp32_loss_curve():
    fp32, bf16 = _losses(precision="fp32"), _losses(precision="bf16")
    assert fp32[-1] < 0.5 * fp32[0]  # the task is learned at all
    # bf16 keeps ~3 significant digits: the curves agree to a few percent, step by step.
    for a, b in zip(fp32, bf16):
        assert b == pytest.approx(a, rel=0.08, abs=0.02)


def test_fit_default_precision_trains_like_fp32():
    from cnnkit.keras import layers
    from cnnkit.keras.models import Sequential

    x, y = _data()
    histories = {}
    for precision in ("auto", "fp32"):
        torch.manual_seed(0)
        model = Sequential([layers.Input((12, 12, 1)), layers.Conv2D(8, 3, activation="relu"),
                            layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10)])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        histories[precision] = model.fit(x, y, batch_size=32, epochs=3, verbose=0,
                                         precision=precision).history["loss"]
    assert histories["auto"] == pytest.approx(histories["fp32"], rel=0.05)
    assert histories["fp32"][-1] < histories["fp32"][0]


def test_fit_rejects_an_unknown_precision():
    from cnnkit.keras import layers
    from cnnkit.keras.models import Sequential

    x, y = _data(32)
    model = Sequential([layers.Input((12, 12, 1)), layers.Flatten(), layers.Dense(10)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="precision"):
        model.fit(x, y, epochs=1, verbose=0, precision="half")


# ------------------------------------------------------------------ fused optimizer

@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-2), ("adamw", 1e-2), ("sgd", 0.2)])
def test_fused_optimizer_follows_the_unfused_loss_curve(optimizer, lr):
    fused = _losses(optimizer=optimizer, lr=lr, fused_optimizer=True)
    plain = _losses(optimizer=optimizer, lr=lr, fused_optimizer=False)
    assert fused[-1] < fused[0]
    # Same update, different summation order: equal up to float rounding.
    assert fused == pytest.approx(plain, rel=1e-3, abs=1e-4)


def test_trainer_fuses_only_the_optimizers_it_builds():
    trainer = Trainer(_net(), TrainConfig(device="cpu", optimizer="adam"), progress=False)
    assert trainer.optimizer.param_groups[0]["fused"] is True
    off = Trainer(_net(), TrainConfig(device="cpu", fused_optimizer=False), progress=False)
    assert not off.optimizer.param_groups[0]["fused"]
    net = _net()
    own = torch.optim.Adam(net.parameters(), lr=1e-3)
    Trainer(net, TrainConfig(device="cpu"), optimizer=own, progress=False)
    assert not own.param_groups[0]["fused"]


def test_use_fused_optimizer_leaves_what_it_cannot_fuse():
    net = nn.Linear(4, 2)
    assert use_fused_optimizer(torch.optim.RMSprop(net.parameters())) is False
    stepped = torch.optim.Adam(net.parameters())
    net(torch.randn(3, 4)).sum().backward()
    stepped.step()
    assert use_fused_optimizer(stepped) is False  # its state was made for the foreach kernel
    assert not stepped.param_groups[0]["fused"]


# ------------------------------------------------------------------ channels_last

def test_channels_last_follows_the_default_layout_loss_curve():
    default = _losses(channels_last=False)
    nhwc = _losses(channels_last=True)
    assert nhwc == pytest.approx(default, rel=1e-3, abs=1e-4)


def test_bf16_channels_last_follows_the_bf16_loss_curve():
    default = _losses(precision="bf16", channels_last=False)
    nhwc = _losses(precision="bf16", channels_last=True)
    assert nhwc == pytest.approx(default, rel=2e-2, abs=2e-2)


def test_auto_channels_last_runs_a_bf16_trainer_nhwc_with_the_same_outputs():
    x = _data(8)[0]
    reference = _net()(x)
    trainer = Trainer(_net(), TrainConfig(device="cpu", precision="bf16"), progress=False)
    assert trainer.channels_last
    conv = trainer.model[0]  # one input channel: NHWC only because the weight was restrided
    assert conv.weight.stride()[1] == 1
    assert conv(x).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(trainer.model(x), reference)


@pytest.mark.parametrize("setting, precision, device, expected", [
    (None, "bf16", "cpu", True), (None, "fp32", "cpu", True), (True, "fp32", "cpu", True),
    (False, "bf16", "cpu", False), (False, "fp32", "cpu", False),
    (None, "fp32", "cuda", False), (None, "bf16", "cuda", True), (None, "fp32", "meta", False),
])
def test_channels_last_auto_is_on_for_a_cpu_and_follows_autocast_elsewhere(
        setting, precision, device, expected):
    from cnnkit.train.device import Precision, resolve_channels_last

    # a Precision built directly: resolve_precision would check that CUDA has bf16
    dtype = torch.bfloat16 if precision == "bf16" else None
    resolved = Precision(precision, dtype, False)
    assert resolve_channels_last(setting, resolved, torch.device(device)) is expected


def test_an_fp32_cpu_trainer_runs_nhwc_by_default_with_the_nchw_outputs():
    x = _data(8)[0]
    reference = _net()(x)
    trainer = Trainer(_net(), TrainConfig(device="cpu", precision="fp32"), progress=False)
    assert trainer.channels_last
    conv = trainer.model[0]
    assert conv.weight.stride()[1] == 1  # restrided NHWC
    assert conv(x).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(trainer.model(x), reference)
    off = Trainer(_net(), TrainConfig(device="cpu", precision="fp32", channels_last=False),
                  progress=False)
    assert not off.channels_last
    assert off.model[0].weight.is_contiguous()  # the switch off keeps NCHW


# ------------------------------------------------------------------ tune_allocator

def test_allocator_switch_keeps_the_loss_curve_identical():
    # the allocator decides where buffers live, never what is computed: bitwise equal
    on = _losses(precision="fp32", tune_allocator=True)
    off = _losses(precision="fp32", tune_allocator=False)
    assert on == off
