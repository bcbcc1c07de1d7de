"""Convolution as a matrix: M @ x equals F.conv2d, over a grid of shapes, strides and paddings."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.inspect.conv_matrix import conv_as_matrix, conv_output_size


GRID = list(itertools.product((1, 2, 3), (0, 1, 2), (1, 2, 3)))  # stride x padding x kernel size


@pytest.mark.parametrize("stride,padding,kernel_size", GRID)
def test_matrix_times_input_equals_conv2d(stride, padding, kernel_size):
    x = torch.randn(2, 6, 7, dtype=torch.float64)
    w = torch.randn(3, 2, kernel_size, kernel_size, dtype=torch.float64)
    m, out_shape = conv_as_matrix(w, x.shape, stride=stride, padding=padding)
    expected = F.conv2d(x[None], w, stride=stride, padding=padding)[0]
    assert out_shape == tuple(expected.shape)
    # (F*Ho*Wo, C*H*W) @ (C*H*W,) -> (F*Ho*Wo,) -> (F, Ho, Wo)
    got = (m.double() @ x.reshape(-1)).reshape(out_shape)
    assert torch.allclose(got, expected, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(3, 8), w=st.integers(3, 8), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_rectangular_kernels_strides_and_paddings(h, w, kh, kw, sh, sw, ph, pw):
    x = torch.randn(1, h, w, dtype=torch.float64)
    weight = torch.randn(2, 1, kh, kw, dtype=torch.float64)
    m, out_shape = conv_as_matrix(weight, x.shape, stride=(sh, sw), padding=(ph, pw))
    expected = F.conv2d(x[None], weight, stride=(sh, sw), padding=(ph, pw))[0]
    got = (m.double() @ x.reshape(-1)).reshape(out_shape)  # (F*Ho*Wo,) -> (F, Ho, Wo)
    assert torch.allclose(got, expected, atol=1e-6)


def test_structure_is_sparse_with_shared_weights():
    kernel = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    m, out_shape = conv_as_matrix(kernel, (1, 4, 4))
    assert m.shape == (4, 16) and out_shape == (1, 2, 2)
    assert torch.count_nonzero(m) == 4 * 9  # each output row sees exactly one 3x3 patch
    # First row: kernel rows laid into the first three image rows (columns 0-2, 4-6, 8-10).
    assert m[0].tolist() == [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0]
    # Shared weights: the last row is the first shifted by one row and one column (5 pixels).
    assert torch.equal(m[3, 5:], m[0, :11])


def test_output_size_formula_and_errors():
    assert conv_output_size(32, 5, 1, 0) == 28
    assert conv_output_size(7, 3, 2, 1) == 4
    with pytest.raises(ValueError, match=r"O = \(2 - 3 \+ 2\*0\)/1 \+ 1 < 1"):
        conv_output_size(2, 3, 1, 0)
    with pytest.raises(ValueError, match=r"kernel has 2 input channels but input_shape"):
        conv_as_matrix(torch.ones(1, 2, 3, 3), (3, 5, 5))
    with pytest.raises(ValueError, match=r"kernel must be \(kh, kw\) or \(F, C, kh, kw\)"):
        conv_as_matrix(torch.ones(3), (1, 5, 5))
    with pytest.raises(ValueError, match=r"stride values must be >= 1"):
        conv_as_matrix(torch.ones(3, 3), (1, 5, 5), stride=0)
