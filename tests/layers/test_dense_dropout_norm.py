"""Dense, Flatten, Dropout and BatchNorm against torch references."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers import BatchNorm, Dense, Dropout, Flatten


def test_dense_forward_and_backward_match_linear():
    layer = Dense(4, in_features=6).double()
    ref_w = layer.weight.detach().clone().requires_grad_(True)
    ref_b = layer.bias.detach().clone().requires_grad_(True)
    x = torch.randn(3, 6, dtype=torch.float64)
    out, ref = layer(x), F.linear(x, ref_w, ref_b)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(layer.weight.grad, ref_w.grad)
    torch.testing.assert_close(layer.bias.grad, ref_b.grad)


def test_dense_infers_in_features_and_applies_activation():
    layer = Dense(3, activation="softmax", bias=False)
    layer.build((5408,))
    assert layer.weight.shape == (3, 5408) and layer.bias is None
    probs = layer(torch.randn(2, 5408))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_dense_on_a_volume_asks_for_flatten():
    with pytest.raises(ValueError, match=r"Dense 'fc' needs a flat input \(F,\), got the volume "
                                         r"13x13x32.*add Flatten\(\) before it"):
        Dense(10).compute_output_shape((32, 13, 13))


def test_flatten_keeps_channel_major_order():
    x = torch.arange(24.0).reshape(2, 3, 2, 2)  # (N, C, H, W)
    torch.testing.assert_close(Flatten()(x), x.reshape(2, 12))
    assert Flatten().compute_output_shape((32, 13, 13)) == (5408,)


def test_dropout_train_zeroes_and_rescales_eval_is_identity():
    layer = Dropout(0.25)
    x = torch.ones(20000)
    out = layer.train()(x)
    kept = out != 0
    assert abs((~kept).float().mean().item() - 0.25) < 0.02
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.75))
    torch.testing.assert_close(layer.eval()(x), x)


def test_dropout_rate_is_validated():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.5"):
        Dropout(1.5)


@pytest.mark.parametrize("shape,reference", [((4, 3, 5, 5), nn.BatchNorm2d),
                                             ((6, 3), nn.BatchNorm1d)])
def test_batch_norm_matches_torch_in_train_and_eval(shape, reference):
    ours = BatchNorm()
    ours.build(shape[1:])
    ref = reference(3)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(*shape)
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x))
    assert set(ours.state_dict()) == set(ref.state_dict())


def test_batch_norm_rejects_other_channel_counts():
    with pytest.raises(ValueError, match=r"built for 3 channels"):
        BatchNorm(num_features=3).build((4, 5, 5))


def test_flatten_of_a_channels_last_volume_keeps_chw_order_and_returns_an_nhwc_gradient():
    torch.manual_seed(0)
    base = torch.randn(3, 4, 5, 6)
    weight = torch.randn(4 * 5 * 6, 7)
    outs, grads = [], []
    for fmt in (torch.channels_last, torch.contiguous_format):
        leaf = base.clone().contiguous(memory_format=fmt).requires_grad_()
        volume = leaf * 2.0  # a non-leaf like a ReLU output: its gradient is what flows back
        volume.register_hook(grads.append)
        outs.append(Flatten()(volume))
        (outs[-1] @ weight).sum().backward()
    assert torch.equal(outs[0], outs[1])  # the same C, H, W order whatever the layout
    assert torch.equal(grads[0], grads[1])
    # the gradient keeps the input's layout, so the layer before runs its fast backward
    assert grads[0].is_contiguous(memory_format=torch.channels_last)
    assert not grads[0].is_contiguous()


def test_flatten_inside_a_channels_last_network_trains_like_the_nchw_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), Flatten(),
                        nn.Linear(4 * 5 * 5, 3))
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 3, (8,))
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        twin = copy.deepcopy(net).to(memory_format=fmt)
        nn.functional.cross_entropy(twin(x.contiguous(memory_format=fmt)), y).backward()
        grads.append([p.grad for p in twin.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
