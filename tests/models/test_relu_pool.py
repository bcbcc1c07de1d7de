"""ReLU → max-pool pairs run pooled first (cnnkit.models.relu_pool): same numbers, fewer values."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from cnnkit.keras import layers as K
from cnnkit.layers import Conv, Dense, Flatten, MaxPool, ReLU
from cnnkit.models.sequential import Sequential


class ShapeReLU(ReLU):
    """A ReLU that remembers the shapes it saw (a subclass, not a hook: hooks turn the pairing off)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return super().forward(x)


def _tied_images(n=6, c=1, size=12, seed=0):
    # small integers: many windows tie on their maximum, many are all <= 0
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 3, (n, c, size, size), generator=g).float()


MODELS = {
    "conv activation": lambda: [Conv(6, 3, activation="relu", padding="same"), MaxPool(2),
                                Conv(8, 3, activation="relu"), MaxPool(2, padding=1),
                                Flatten(), Dense(5)],
    "relu layer": lambda: [Conv(6, 3), ReLU(), MaxPool(2), Conv(8, 3), nn.ReLU(),
                           nn.MaxPool2d(2, ceil_mode=True), Flatten(), Dense(5)],
    "keras": lambda: [K.Conv2D(6, 3, activation="relu", padding="same"), K.MaxPooling2D(2), K.Conv2D(8, 3),
                      K.Activation("relu"), K.MaxPooling2D(2), K.Flatten(), K.Dense(5)],
}


def _outputs_and_grads(model, x, autocast):
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    # weights that differ per output, so every gradient path matters
    (out.float() * torch.arange(1, out.shape[1] + 1)).sum().backward()
    return out.detach(), x.grad, {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("autocast,channels_last", [(False, False), (True, True)])
def test_pooling_first_gives_identical_outputs_and_gradients(kind, autocast, channels_last):
    torch.manual_seed(0)
    reordered = Sequential(MODELS[kind](), input_shape="12x12x1")
    as_written = copy.deepcopy(reordered)
    as_written.pool_before_relu = False
    x = _tied_images()
    if channels_last:
        reordered = reordered.to(memory_format=torch.channels_last)
        as_written = as_written.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    out_a, gx_a, grads_a = _outputs_and_grads(reordered, x, autocast)
    out_b, gx_b, grads_b = _outputs_and_grads(as_written, x, autocast)
    assert torch.equal(out_a, out_b)
    assert torch.equal(gx_a, gx_b)
    assert gx_a.abs().sum() > 0  # a real gradient, not two zero tensors
    for name in grads_b:
        assert torch.equal(grads_a[name], grads_b[name]), name


def test_the_relu_runs_on_the_pooled_volume_and_the_switch_turns_it_off():
    relu = ShapeReLU()
    model = Sequential([Conv(4, 3, padding="same"), relu, MaxPool(2), Flatten(), Dense(3)],
                       input_shape="8x8x1")
    model(torch.randn(2, 1, 8, 8))
    assert relu.seen == [(2, 4, 4, 4)]  # (N, C, H/2, W/2): pooled first
    model.pool_before_relu = False
    model(torch.randn(2, 1, 8, 8))
    assert relu.seen[-1] == (2, 4, 8, 8)  # as written: the full volume


def test_evaluation_and_the_summary_see_the_layers_as_written():
    from cnnkit.inspect.summary import summary

    relu = ShapeReLU()
    model = Sequential([Conv(4, 3, padding="same"), relu, MaxPool(2), Flatten(), Dense(3)],
                       input_shape="8x8x1")
    model.eval()
    model(torch.randn(2, 1, 8, 8))
    assert relu.seen == [(2, 4, 8, 8)]
    model.train()
    rows = summary(model).rows
    assert [r.output_shape for r in rows][:3] == [(4, 8, 8), (4, 8, 8), (4, 4, 4)]
    assert model.training  # summary left the mode as it was


def test_a_conv_activation_runs_after_the_pool():
    relu = ShapeReLU()
    model = Sequential([Conv(4, 3, padding="same", activation=relu), MaxPool(2), Flatten(),
                        Dense(3)], input_shape="8x8x1")
    model(torch.randn(2, 1, 8, 8))
    assert relu.seen[-1] == (2, 4, 4, 4)


def test_a_hooked_layer_sees_its_own_output():
    torch.manual_seed(0)
    conv = Conv(4, 3, padding="same", activation="relu")
    model = Sequential([conv, MaxPool(2), Flatten(), Dense(3)], input_shape="8x8x1")
    seen = []
    handle = conv.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(2, 1, 8, 8)
    out = model(x)
    handle.remove()
    assert seen[0].shape == (2, 4, 8, 8)  # the conv's ReLU output, not a pooled one
    assert torch.equal(seen[0], torch.relu(conv.forward_linear(x)))
    assert torch.equal(out, model(x))  # and the unhooked model gives the same result


def test_average_pooling_runs_as_written():
    relu = ShapeReLU()
    model = Sequential([Conv(4, 3, padding="same"), relu, nn.AvgPool2d(2), Flatten(), Dense(3)],
                       input_shape="8x8x1")
    model(torch.randn(2, 1, 8, 8))
    assert relu.seen == [(2, 4, 8, 8)]  # average pooling does not commute with ReLU


def test_training_steps_end_with_identical_weights():
    torch.manual_seed(1)
    base = Sequential([Conv(6, 3, activation="relu"), MaxPool(2), Conv(8, 3), ReLU(),
                       MaxPool(2), Flatten(), Dense(4)], input_shape="14x14x1")
    before = base[0].weight.detach().clone()
    models = {True: base, False: copy.deepcopy(base)}
    models[False].pool_before_relu = False
    g = torch.Generator().manual_seed(2)
    batches = [(torch.rand(16, 1, 14, 14, generator=g),
                torch.randint(0, 4, (16,), generator=g)) for _ in range(5)]
    for flag, model in models.items():
        model.pool_before_relu = flag
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, a), b in zip(models[True].state_dict().items(), models[False].state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(models[True][0].weight, before)  # it did train


class _ReluShapes(torch.overrides.TorchFunctionMode):
    """Record the input shape of every ReLU call (an observer that is neither a hook nor a mock)."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "").startswith("relu") and args:
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


ZOO = {"vgg11": dict(input_size=32, classifier_width=16),
       "vgg11_bn": dict(input_size=32, classifier_width=16),
       "alexnet": dict(input_size=63, classifier_width=16),
       "keras_mnist": dict(input_size=28, in_channels=1)}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_pool_first_with_identical_results(name):
    from cnnkit.models import create

    options = {"in_channels": 3, **ZOO[name]}
    torch.manual_seed(0)
    reordered = create(name, num_classes=4, **options)
    as_written = copy.deepcopy(reordered)
    as_written.pool_before_relu = False
    size = options["input_size"]
    x = torch.rand(2, options["in_channels"], size, size)
    results, relu_counts = [], []
    for model in (reordered, as_written):
        torch.manual_seed(1)  # the same dropout masks
        with _ReluShapes() as seen:
            out, gx, grads = _outputs_and_grads(model, x, autocast=False)
        results.append((out, gx, grads))
        relu_counts.append(sum(math.prod(s) for s in seen.shapes))
    (out_a, gx_a, grads_a), (out_b, gx_b, grads_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    for key in grads_b:
        assert torch.equal(grads_a[key], grads_b[key]), key
    assert relu_counts[0] < relu_counts[1]  # fewer values went through ReLU pooled first
    reordered.eval()
    with _ReluShapes() as seen:
        reordered(x)
    assert sum(math.prod(s) for s in seen.shapes) == relu_counts[1]  # eval: as written
