"""Conv against torch.nn.functional.conv2d: values and gradients in float64, plus its errors."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from cnnkit.layers import Conv
from cnnkit.layers.arithmetic import same_padding

# (kernel, stride, padding, dilation)
GRID = list(itertools.product([1, 2, 3], [1, 2], [0, 1], [1, 2]))


def _conv64(filters, k, s, p, d, channels=2, groups=1):
    layer = Conv(filters, k, stride=s, padding=p, dilation=d, groups=groups,
                 in_channels=channels, rounding="floor").double()
    ref_w = layer.weight.detach().clone().requires_grad_(True)
    ref_b = layer.bias.detach().clone().requires_grad_(True)
    return layer, ref_w, ref_b


@pytest.mark.parametrize("k,s,p,d", GRID)
def test_forward_and_backward_match_functional(k, s, p, d):
    layer, ref_w, ref_b = _conv64(3, k, s, p, d)
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = layer(x)
    ref = F.conv2d(x_ref, ref_w, ref_b, stride=s, padding=p, dilation=d)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(layer.weight.grad, ref_w.grad)
    torch.testing.assert_close(layer.bias.grad, ref_b.grad)


@pytest.mark.parametrize("k,s", [(2, 1), (3, 2), (4, 1), (4, 2), (5, 3)])
def test_same_padding_matches_manual_pad_reference(k, s):
    layer, ref_w, ref_b = _conv64(2, k, s, "same", 1)
    x = torch.randn(1, 2, 7, 8, dtype=torch.float64)
    top, bottom = same_padding(7, k, s)
    left, right = same_padding(8, k, s)
    ref = F.conv2d(F.pad(x, (left, right, top, bottom)), ref_w, ref_b, stride=s)
    out = layer(x)
    torch.testing.assert_close(out, ref)
    assert out.shape[-2:] == (-(-7 // s), -(-8 // s))  # ceil(W / S)


def test_same_padding_is_symmetric_for_odd_kernels_at_stride_one():
    conv = Conv(4, 5, padding="same")
    conv.build((3, 9, 9))
    assert conv.padding == (2, 2)
    assert conv.compute_output_shape((3, 9, 9)) == (4, 9, 9)


def test_groups_and_one_by_one_convolution_match_functional():
    layer, ref_w, ref_b = _conv64(4, 1, 1, 0, 1, channels=4, groups=2)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), F.conv2d(x, ref_w, ref_b, groups=2))
    assert layer.weight.shape == (4, 2, 1, 1)


def test_activation_argument_is_applied():
    conv = Conv(2, 3, activation="relu", in_channels=1)
    x = torch.randn(1, 1, 5, 5)
    torch.testing.assert_close(conv(x), F.relu(F.conv2d(x, conv.weight, conv.bias)))


def test_strict_rounding_message_shows_formula_and_fixes():
    conv = Conv(8, 3, stride=3, rounding="strict", name="conv2")
    expected = (
        "Conv 'conv2': output size O = (W − K + 2P)/S + 1 = (7 − 3 + 2·0)/3 + 1 = 2.33 is not an "
        "integer. Fixes: padding=1 gives (7 − 3 + 2·1)/3 + 1 = 3; stride=1 or 2 fits; or pass "
        'rounding="floor" to drop the leftover columns as PyTorch does.'
    )
    with pytest.raises(ValueError) as info:
        conv.compute_output_shape((1, 7, 7))
    assert str(info.value) == expected


def test_floor_rounding_matches_pytorch():
    conv = Conv(8, 3, stride=3, rounding="floor", in_channels=1)
    assert conv.compute_output_shape((1, 7, 7)) == (8, 2, 2)
    assert conv(torch.zeros(1, 1, 7, 7)).shape == (1, 8, 2, 2)


def test_strict_message_names_the_axis_when_only_one_fails():
    conv = Conv(8, 3, stride=2, rounding="strict", name="c")
    with pytest.raises(ValueError, match=r"output height O = .*\(8 − 3 \+ 2·0\)/2 \+ 1 = 3\.50"):
        conv.compute_output_shape((1, 8, 9))


def test_volume_shrinking_to_zero_always_raises_naming_the_layer():
    conv = Conv(8, 5, rounding="floor", name="conv3")
    with pytest.raises(ValueError, match=r"Conv 'conv3': the volume shrinks to 0 along the width"):
        conv.compute_output_shape((16, 4, 4))


def test_dilation_enters_the_effective_kernel():
    conv = Conv(1, 3, dilation=2, in_channels=1)
    assert conv.compute_output_shape((1, 9, 9)) == (1, 5, 5)
    assert conv(torch.zeros(1, 1, 9, 9)).shape == (1, 1, 5, 5)


def test_lazy_build_on_first_forward():
    conv = Conv(4, 3)
    assert not conv.built and not list(conv.parameters())
    out = conv(torch.zeros(2, 3, 6, 6, dtype=torch.float64))
    assert conv.built and conv.weight.shape == (4, 3, 3, 3) and conv.weight.dtype == torch.float64
    assert out.shape == (2, 4, 4, 4)


def test_build_is_idempotent_and_rejects_other_channel_counts():
    conv = Conv(4, 3)
    conv.build((3, 8, 8))
    weight = conv.weight
    conv.build((3, 8, 8))
    assert conv.weight is weight
    with pytest.raises(ValueError, match=r"built for 3 input channels"):
        conv.build((5, 8, 8))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"filters": 0}, ValueError, r"filters must be >= 1, got 0"),
    ({"filters": 8, "padding": "sme"}, ValueError,
     r"padding must be .*'valid' or 'same', got 'sme'"),
    ({"filters": 8, "kernel_size": (3, 3, 3)}, ValueError, r"kernel_size must have 2 values"),
    ({"filters": 8, "rounding": "ceil"}, ValueError, r"rounding must be 'warn'.*'floor'.*'strict'.*got 'ceil'"),
    ({"filters": 8, "activation": "rleu"}, ValueError,
     r"unknown activation 'rleu' \(did you mean 'relu'\?\)"),
    ({"filters": 6, "groups": 4}, ValueError, r"filters \(6\) must be divisible by groups \(4\)"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        Conv(**kwargs)


def test_flat_input_is_rejected():
    with pytest.raises(ValueError, match=r"needs an image volume \(C, H, W\)"):
        Conv(4, 3).compute_output_shape((120,))


def test_same_padding_follows_inputs_other_than_the_built_size():
    conv = Conv(2, 3, stride=2, padding="same", in_channels=1).double()
    conv.build((1, 8, 8))
    assert conv.pads(8, 8) == (0, 1, 0, 1)  # 8 -> 4 needs 1 pixel: it goes bottom/right
    assert conv.padding == (0, 0)  # top/left, what receptive-field arithmetic uses
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1))
