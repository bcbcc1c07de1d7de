"""Activation layers against torch.nn.functional (values and gradients) and get_activation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation

CASES = [
    (ReLU(), F.relu),
    (LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
    (Tanh(), torch.tanh),
    (Sigmoid(), torch.sigmoid),
    (GELU(), F.gelu),
    (Softmax(), lambda t: F.softmax(t, dim=1)),
]


@pytest.mark.parametrize("layer,reference", CASES, ids=lambda c: type(c).__name__)
def test_forward_and_backward_match_functional(layer, reference):
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, ref = layer(x), reference(x_ref)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_softmax_rows_sum_to_one():
    probs = Softmax()(torch.randn(5, 10))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))


@pytest.mark.parametrize("name,cls", [("relu", ReLU), ("leaky_relu", LeakyReLU), ("Tanh", Tanh),
                                      ("sigmoid", Sigmoid), ("gelu", GELU), ("softmax", Softmax)])
def test_get_activation_resolves_names(name, cls):
    assert type(get_activation(name)) is cls


def test_get_activation_linear_none_and_modules():
    assert get_activation("linear") is None and get_activation(None) is None
    module = nn.SiLU()
    assert get_activation(module) is module


def test_get_activation_errors_list_valid_names():
    with pytest.raises(ValueError, match=r"unknown activation 'sigmod' \(did you mean "
                                         r"'sigmoid'\?\); expected one of relu, leaky_relu"):
        get_activation("sigmod")
    with pytest.raises(TypeError, match=r"activation must be a name such as 'relu'.*got 3"):
        get_activation(3)


def test_spec_tokens():
    assert [layer.to_spec() for layer, _ in CASES] == [
        "relu", "leakyrelu(0.2)", "tanh", "sigmoid", "gelu", "softmax"]
    assert LeakyReLU().to_spec() == "leakyrelu"
