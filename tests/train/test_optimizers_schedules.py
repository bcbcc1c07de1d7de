import json
import math

import pytest
import torch
from torch import nn

from cnnkit.train.device import use_fused_optimizer
from cnnkit.train.optimizers import OPTIMIZER_CLASSES, build_optimizer, eager_optimizer_class
from cnnkit.train.schedules import build_schedule, lr_factor


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CLASSES))
def test_every_optimizer_builds_and_reduces_a_quadratic(name):
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5))
    opt = build_optimizer(name, [w], lr=0.05 if name != "adadelta" else 1.0, momentum=0.0)
    start = (w ** 2).sum().item()
    for _ in range(20):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert isinstance(opt, OPTIMIZER_CLASSES[name])
    assert (w ** 2).sum().item() < start


def _train_a_small_net(name, *, eager, fused=False, steps=12):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 3))
    opt = build_optimizer(name, net.parameters(), lr=0.01 if name != "adadelta" else 1.0,
                          momentum=0.9 if name == "sgd" else 0.0, weight_decay=1e-3,
                          eager=eager)
    if fused:
        assert use_fused_optimizer(opt)
    schedule = build_schedule("onecycle" if name != "adadelta" else "cosine", opt,
                              total_steps=steps, warmup_steps=2)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        schedule.step()
    return net, opt


@pytest.mark.parametrize("name,fused", [(n, False) for n in sorted(OPTIMIZER_CLASSES)]
                         + [("adam", True), ("sgd", True)])
def test_eager_optimizers_update_bit_identically_to_torchs(name, fused):
    eager_net, eager_opt = _train_a_small_net(name, eager=True, fused=fused)
    torch_net, torch_opt = _train_a_small_net(name, eager=False, fused=fused)
    assert type(torch_opt) is OPTIMIZER_CLASSES[name]
    assert type(eager_opt) is not OPTIMIZER_CLASSES[name]
    assert isinstance(eager_opt, OPTIMIZER_CLASSES[name])
    assert type(eager_opt).__name__ == OPTIMIZER_CLASSES[name].__name__
    for a, b in zip(eager_net.state_dict().values(), torch_net.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(eager_net[0].weight, _train_a_small_net(name, eager=True,
                                                                   steps=2)[0][0].weight)
    # the state round-trips between the two kinds, in both directions
    restored = _train_a_small_net(name, eager=False, steps=2)[1]
    restored.load_state_dict(eager_opt.state_dict())
    assert str(restored.state_dict()) == str(torch_opt.state_dict())


def test_eager_optimizer_class_is_cached_and_keeps_the_differentiable_path():
    assert eager_optimizer_class(torch.optim.SGD) is eager_optimizer_class(torch.optim.SGD)
    for cls in (torch.optim.SGD, eager_optimizer_class(torch.optim.SGD)):
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        p = w.clone()  # a non-leaf parameter, as differentiable optimizers are used
        p.grad = torch.tensor([4.0, 6.0], requires_grad=True)
        cls([p], lr=0.5, differentiable=True).step()  # the eager class runs torch's own step
        assert torch.equal(p.detach(), torch.tensor([-1.0, -1.0]))
        p.sum().backward()  # the update stayed in the autograd graph
        assert torch.equal(p.grad.grad, torch.tensor([-0.5, -0.5]))


def test_a_training_process_that_does_not_compile_never_imports_dynamo():
    import subprocess
    import sys
    code = f"""
import sys, torch
from torch import nn
from cnnkit.train.optimizers import build_optimizer
from cnnkit.train.schedules import build_schedule
net = nn.Linear(3, 2)
for name in ("sgd", "adam", "adamw", "rmsprop", "adadelta"):
    opt = build_optimizer(name, net.parameters(), lr=0.1)
    sched = build_schedule("cosine", opt, total_steps=3)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).sum().backward()
        opt.step(); sched.step()
    opt.load_state_dict(opt.state_dict())
print("imported" if "torch._dynamo" in sys.modules else "absent")
opt = build_optimizer("sgd", net.parameters(), lr=0.1, eager=False)
opt.zero_grad()
print("imported" if "torch._dynamo" in sys.modules else "absent")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["absent", "imported"]


def test_sgd_settings_reach_torch():
    opt = build_optimizer("SGD", [nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9,
                          nesterov=True, weight_decay=5e-4)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        0.1, 0.9, True, 5e-4)
    assert build_optimizer("adam", [nn.Parameter(torch.zeros(1))]).param_groups[0]["lr"] == 1e-3


def test_optimizer_errors():
    params = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match=r"unknown optimizer 'adan'; did you mean 'adam'\?"):
        build_optimizer("adan", params)
    with pytest.raises(ValueError, match="nesterov=True needs optimizer='sgd' with momentum > 0"):
        build_optimizer("sgd", params, nesterov=True)
    with pytest.raises(ValueError, match=r"lr must be >= 0, got -1"):
        build_optimizer("sgd", params, lr=-1)


def test_schedule_factors_follow_their_formulas():
    assert lr_factor(7, name="constant", total_steps=10) == 1.0
    # cosine: 0.5 (1 + cos(pi p))
    for s in (0, 25, 50, 99):
        assert lr_factor(s, name="cosine", total_steps=100) == pytest.approx(
            0.5 * (1 + math.cos(math.pi * s / 100)))
    # linear warm-up for 10 steps, then cosine over the remaining 90
    assert lr_factor(0, name="cosine", total_steps=100, warmup_steps=10) == pytest.approx(0.1)
    assert lr_factor(9, name="cosine", total_steps=100, warmup_steps=10) == pytest.approx(1.0)
    assert lr_factor(55, name="cosine", total_steps=100, warmup_steps=10) == pytest.approx(0.5)
    # step: x0.1 at 50% and x0.01 at 75%
    assert [lr_factor(s, name="step", total_steps=100) for s in (49, 50, 74, 75)] == \
        pytest.approx([1.0, 0.1, 0.1, 0.01])
    # one-cycle: 1/25 at the start, 1 at 30%, ~0 at the end
    assert lr_factor(0, name="onecycle", total_steps=100) == pytest.approx(1 / 25)
    assert lr_factor(30, name="onecycle", total_steps=100) == pytest.approx(1.0)
    assert lr_factor(15, name="onecycle", total_steps=100) == pytest.approx(1 / 25 + (24 / 25) / 2)
    assert lr_factor(100, name="onecycle", total_steps=100) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "onecycle"])
def test_scheduler_sets_the_optimizer_lr_each_step_and_saves_as_json(name):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = build_schedule(name, opt, total_steps=20, warmup_steps=4)
    for step in range(20):
        expected = 0.2 * lr_factor(step, name=name, total_steps=20, warmup_steps=4)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected)
        opt.step()
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    fresh_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    fresh = build_schedule(name, fresh_opt, total_steps=20, warmup_steps=4)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 20


def test_schedule_errors():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    with pytest.raises(ValueError, match=r"unknown schedule 'cosin'; did you mean 'cosine'\?"):
        build_schedule("cosin", opt, total_steps=10)
    with pytest.raises(ValueError, match=r"warmup_steps must be in \[0, total_steps=10\]"):
        build_schedule("cosine", opt, total_steps=10, warmup_steps=11)


# Keras 3's documented defaults (keras.io/api/optimizers), written out by hand.
KERAS_3 = {"sgd": {"lr": 0.01}, "adam": {"lr": 1e-3, "eps": 1e-7},
           "adamw": {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004},
           "rmsprop": {"lr": 1e-3, "eps": 1e-7, "alpha": 0.9},
           "adadelta": {"lr": 1e-3, "eps": 1e-7, "rho": 0.95}}


@pytest.mark.parametrize("name", sorted(KERAS_3))
def test_keras_defaults_are_keras_3s_and_plain_defaults_stay_pytorchs(name):
    params = [nn.Parameter(torch.zeros(1))]
    keras_group = build_optimizer(name, params, keras_defaults=True).param_groups[0]
    assert {k: keras_group[k] for k in KERAS_3[name]} == KERAS_3[name]
    plain_group = build_optimizer(name, params).param_groups[0]  # cnnkit train's: PyTorch's
    torch_defaults = OPTIMIZER_CLASSES[name]([nn.Parameter(torch.zeros(1))]).defaults
    for key in set(KERAS_3[name]) - {"lr", "weight_decay"}:
        assert plain_group[key] == torch_defaults[key] != KERAS_3[name][key]


def test_given_lr_and_weight_decay_win_over_keras_defaults():
    group = build_optimizer("adamw", [nn.Parameter(torch.zeros(1))], lr=0.3, weight_decay=0.1,
                            keras_defaults=True).param_groups[0]
    assert (group["lr"], group["weight_decay"], group["eps"]) == (0.3, 0.1, 1e-7)


def test_keras_rmsprop_step_is_keras_formula():
    """One RMSprop step from zero state: v = (1 - rho) g², w -= lr g / (sqrt(v) + eps)."""
    w = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = build_optimizer("rmsprop", [w], keras_defaults=True)
    (3 * w).sum().backward()  # g = 3 everywhere
    opt.step()
    expected = torch.tensor([1.0, -2.0]) - 1e-3 * 3 / (math.sqrt(0.1 * 9) + 1e-7)
    torch.testing.assert_close(w.detach(), expected)


def test_the_keras_surface_builds_named_optimizers_with_keras_defaults():
    from cnnkit.keras import layers
    from cnnkit.keras.models import Sequential

    model = Sequential([layers.Input((4, 4, 1)), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(torch.rand(8, 4, 4, 1), torch.randint(0, 2, (8,)), epochs=1, batch_size=4,
              verbose=0)
    group = model._compiled().built_optimizer.param_groups[0]
    assert (group["alpha"], group["eps"], group["lr"]) == (0.9, 1e-7, 1e-3)


def test_onecycle_says_warmup_epochs_is_not_used(caplog):
    """onecycle has its own ramp: a warmup_epochs beside it is named as unused, once."""
    from cnnkit.data.dataset import ImageData
    from cnnkit.data.loader import InMemoryLoader
    from cnnkit.train import Trainer, TrainConfig

    torch.manual_seed(0)
    data = ImageData(torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8),
                     torch.randint(0, 2, (32,)), ["a", "b"])
    loader = InMemoryLoader(data, batch_size=8, shuffle=True, seed=0)
    for schedule, warmup, warned in (("onecycle", 0.5, True), ("onecycle", 0.0, False),
                                     ("cosine", 0.5, False)):
        caplog.clear()
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        config = TrainConfig(epochs=1, lr=0.01, batch_size=8, device="cpu", schedule=schedule,
                             warmup_epochs=warmup)
        with caplog.at_level("WARNING", logger="cnnkit"):
            Trainer(model, config, progress=False).fit(loader)
        said = [r.getMessage() for r in caplog.records if "warmup_epochs" in r.getMessage()]
        assert len(said) == int(warned), (schedule, warmup, said)
        if warned:
            assert "warmup_epochs=0.5 is not used" in said[0] and "--schedule cosine" in said[0]
