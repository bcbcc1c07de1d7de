"""Keras-named layers: Keras semantics (H×W×C input_shape, floor rounding, TF 'same')."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.layers.keras import (
    Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Flatten,
    GlobalAveragePooling2D, Input, MaxPool2D, MaxPooling2D, Softmax,
)
from cnnkit.models.sequential import Sequential


def test_conv2d_reads_input_shape_as_hwc():
    layer = Conv2D(32, (3, 3), activation="relu", input_shape=[28, 28, 1])
    assert layer.input_shape == (1, 28, 28)
    assert layer.compute_output_shape((1, 28, 28)) == (32, 26, 26)


def test_conv2d_same_with_even_kernel_pads_bottom_right():
    layer = Conv2D(1, 2, padding="same")
    layer.build((1, 4, 4))
    x = torch.randn(1, 1, 4, 4)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), ref)


def test_keras_layers_floor_instead_of_raising():
    assert Conv2D(4, 3, strides=3).compute_output_shape((1, 7, 7)) == (4, 2, 2)
    assert MaxPool2D().compute_output_shape((4, 13, 13)) == (4, 6, 6)
    assert MaxPooling2D is MaxPool2D


def test_keras_padding_is_validated():
    with pytest.raises(ValueError,
                       match=r"padding must be 'valid' or 'same' \(Keras\), got 'full'"):
        Conv2D(4, 3, padding="full")


def test_average_pooling_same_excludes_padding_like_keras():
    x = torch.ones(1, 1, 3, 3)
    torch.testing.assert_close(AveragePooling2D(padding="same")(x), torch.ones(1, 1, 2, 2))


def test_batch_normalization_converts_keras_momentum():
    layer = BatchNormalization(momentum=0.99, epsilon=1e-3)
    assert layer.momentum == pytest.approx(0.01) and layer.eps == 1e-3


def test_dense_flat_input_shape_and_activation_layers():
    assert Dense(512, input_shape=(784,)).input_shape == (784,)
    assert Activation("relu")(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 1.0]
    assert Activation("tanh").to_spec() == "tanh"
    torch.testing.assert_close(Softmax()(torch.zeros(1, 4)), torch.full((1, 4), 0.25))
    assert GlobalAveragePooling2D()(torch.ones(2, 3, 4, 4)).shape == (2, 3)
    assert Input((28, 28, 1)).input_shape == (1, 28, 28)


def test_keras_mlp_with_flatten_input_shape():
    model = Sequential([Flatten(input_shape=(28, 28)), Dense(128, activation="relu"), Dense(10)])
    assert model.input_shape == (1, 28, 28) and model.shapes()[0] == ("flatten1", (784,))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("make, fans", [
    (lambda: __import__("cnnkit.layers.keras", fromlist=["Conv2D"]).Conv2D(
        64, (3, 3), input_shape=(28, 28, 32)), (32 * 9, 64 * 9)),
    (lambda: __import__("cnnkit.layers.keras", fromlist=["Dense"]).Dense(
        128, input_shape=(3136,)), (3136, 128)),
])
def test_keras_layers_start_from_keras_initialisers(make, fans):
    """#18 item 2: Glorot-uniform kernels (bound sqrt(6 / (fan_in + fan_out))), zero biases."""
    torch.manual_seed(0)
    layer = make()
    Sequential([layer])  # builds the layer from its Keras input_shape
    bound = (6 / sum(fans)) ** 0.5
    weight = layer.weight.detach()
    assert float(weight.abs().max()) <= bound
    assert float(weight.abs().max()) > 0.95 * bound  # uniform over the whole range
    assert float(weight.std()) == pytest.approx(bound / 3 ** 0.5, rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0
