"""Pooling layers against torch.nn.functional references, gradcheck for sum and L2 pooling."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from cnnkit.layers import AvgPool, GlobalAvgPool, GlobalMaxPool, L2Pool, MaxPool, SumPool
from cnnkit.layers.arithmetic import same_padding

GRID = [(k, s, p) for k, s, p in itertools.product([1, 2, 3], [1, 2, 3], [0, 1]) if p <= k // 2]


def _window_sum(x, k, s, p):
    """Independent reference: depthwise convolution with a kernel of ones."""
    channels = x.shape[1]
    ones = torch.ones(channels, 1, k, k, dtype=x.dtype)
    return F.conv2d(x, ones, stride=s, padding=p, groups=channels)


def _check_against(layer, reference, x):
    x = x.detach().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, ref = layer(x), reference(x_ref)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)


@pytest.mark.parametrize("k,s,p", GRID)
def test_max_pool_matches_functional(k, s, p):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    _check_against(MaxPool(k, s, p), lambda t: F.max_pool2d(t, k, s, p), x)


@pytest.mark.parametrize("k,s,p", GRID)
def test_avg_pool_matches_functional_without_counting_padding(k, s, p):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    _check_against(AvgPool(k, s, p),
                   lambda t: F.avg_pool2d(t, k, s, p, count_include_pad=False), x)


@pytest.mark.parametrize("k,s,p", GRID)
def test_sum_pool_matches_depthwise_ones_convolution(k, s, p):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    _check_against(SumPool(k, s, p), lambda t: _window_sum(t, k, s, p), x)


@pytest.mark.parametrize("k,s,p", GRID)
def test_l2_pool_matches_sqrt_of_windowed_squares(k, s, p):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    _check_against(L2Pool(k, s, p), lambda t: _window_sum(t * t, k, s, p).sqrt(), x)


@pytest.mark.parametrize("layer", [SumPool(2), SumPool(3, 2, padding=1), L2Pool(2),
                                   L2Pool(3, 2, padding=1), SumPool(2, padding="same"),
                                   L2Pool(2, 1, padding="same")])
def test_gradcheck_float64(layer):
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_l2_pool_gradient_of_an_all_zero_window_is_zero_not_nan():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[..., 2:, 2:] = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    x.requires_grad_(True)
    L2Pool(2)(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[..., :2, :] == 0).all()
    torch.testing.assert_close(x.grad[0, 0, 2:, 2:], torch.tensor([[0.6, 0.0], [0.0, 0.8]],
                                                                  dtype=torch.float64))


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (2, 1)])
def test_same_padding_matches_manual_reference(k, s):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    top, bottom = same_padding(5, k, s)
    left, right = same_padding(6, k, s)
    borders = (left, right, top, bottom)
    max_ref = F.max_pool2d(F.pad(x, borders, value=float("-inf")), k, s)
    torch.testing.assert_close(MaxPool(k, s, "same")(x), max_ref)
    ones = torch.ones(1, 1, 5, 6, dtype=torch.float64)
    avg_ref = _window_sum(F.pad(x, borders), k, s, 0) / _window_sum(F.pad(ones, borders), k, s, 0)
    torch.testing.assert_close(AvgPool(k, s, "same")(x), avg_ref)
    assert max_ref.shape[-2:] == (-(-5 // s), -(-6 // s))


def test_default_window_and_stride_are_two():
    pool = MaxPool()
    assert pool.kernel_size == (2, 2) and pool.stride == (2, 2)
    assert pool.compute_output_shape((32, 26, 26)) == (32, 13, 13)


def test_strict_pool_on_odd_input_raises_with_formula():
    with pytest.raises(ValueError, match=r"MaxPool 'p': output size O = .* = \(13 − 2 \+ 2·0\)/2 "
                                         r"\+ 1 = 6\.50 is not an integer"):
        MaxPool(2, rounding="strict", name="p").compute_output_shape((8, 13, 13))
    assert MaxPool(2, rounding="floor").compute_output_shape((8, 13, 13)) == (8, 6, 6)


def test_pool_arguments_are_validated():
    with pytest.raises(ValueError, match=r"padding must be at most half the window size 2"):
        MaxPool(2, padding=2)
    with pytest.raises(ValueError, match=r"size values must be >= 1, got 0"):
        AvgPool(0)


def test_global_pools_reduce_each_map_to_one_number():
    x = torch.randn(2, 4, 3, 5)
    torch.testing.assert_close(GlobalAvgPool()(x), F.adaptive_avg_pool2d(x, 1).flatten(1))
    torch.testing.assert_close(GlobalMaxPool()(x), F.adaptive_max_pool2d(x, 1).flatten(1))
    assert GlobalAvgPool().compute_output_shape((4, 3, 5)) == (4,)
