"""The documented output-size formula equals the real output shape (Hypothesis property tests)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.layers import Conv, MaxPool, conv_output_size, same_padding
from cnnkit.layers.arithmetic import effective_kernel


@st.composite
def valid_windows(draw):
    k = draw(st.integers(1, 5))
    d = draw(st.integers(1, 3))
    p = draw(st.integers(0, 3))
    w = draw(st.integers(max(1, effective_kernel(k, d) - 2 * p), 20))
    s = draw(st.integers(1, 4))
    return w, k, s, p, d


@settings(max_examples=60, deadline=None)
@given(valid_windows())
def test_formula_equals_functional_conv_shape(args):
    w, k, s, p, d = args
    x = torch.zeros(1, 1, w, w)
    out = F.conv2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
    assert out.shape[-1] == conv_output_size(w, k, s, p, d)
    documented = math.floor((w - effective_kernel(k, d) + 2 * p) / s) + 1
    assert conv_output_size(w, k, s, p, d) == documented


@settings(max_examples=40, deadline=None)
@given(valid_windows())
def test_layer_shape_inference_equals_real_output(args):
    w, k, s, p, d = args
    conv = Conv(2, k, stride=s, padding=p, dilation=d, in_channels=1, rounding="floor")
    assert conv(torch.zeros(1, 1, w, w + 1)).shape[1:] == conv.compute_output_shape((1, w, w + 1))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4))
def test_same_padding_gives_ceil_of_w_over_s(w, k, s):
    before, after = same_padding(w, k, s)
    assert 0 <= after - before <= 1
    assert (w + before + after - k) // s + 1 == math.ceil(w / s)
    pool = MaxPool(k, s, "same", rounding="floor")
    assert pool(torch.zeros(1, 1, w, w)).shape[-1] == math.ceil(w / s)


def test_tutorial_numbers():
    assert conv_output_size(28, 3) == 26          # 28x28 -> 26x26 with a 3x3 filter
    assert conv_output_size(26, 2, 2) == 13       # 2x2 max pool -> 13x13
    assert conv_output_size(227, 11, 4) == 55     # AlexNet's first layer
    assert conv_output_size(32, 5, 1, 2) == 32    # "same" with P = (K - 1)/2
