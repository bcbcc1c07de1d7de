"""Sequential: shape inference, Keras-style building, errors and architecture round trips."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.layers import BatchNorm, Conv, Dense, Dropout, Flatten, GlobalAvgPool, MaxPool, ReLU
from cnnkit.layers import keras
from cnnkit.models.sequential import Sequential


def _keras_tutorial_model() -> Sequential:
    model = Sequential()
    model.add(keras.Conv2D(32, (3, 3), activation="relu", input_shape=[28, 28, 1]))
    model.add(keras.MaxPool2D())
    model.add(keras.Flatten())
    model.add(keras.Dense(256, activation="relu"))
    model.add(keras.Dropout(0.5))
    model.add(keras.Dense(10, activation="softmax"))
    return model


def test_keras_tutorial_model_infers_5408_features():
    model = _keras_tutorial_model()
    assert model.input_shape == (1, 28, 28)
    assert dict(model.shapes())["flatten1"] == (5408,)
    assert model[3].weight.shape == (256, 5408)
    probs = model.eval()(torch.rand(2, 1, 28, 28))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_parameters_exist_before_any_forward_call():
    model = Sequential([Conv(8, 3), ReLU(), MaxPool(2), Flatten(), Dense(10)], "8x8x3")
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(8, 3, 3, 3), (8,), (10, 72), (10,)]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "4.weight", "4.bias"]


def test_shapes_and_output_shape_follow_the_formula():
    model = Sequential([Conv(6, 5), MaxPool(2), Conv(16, 5), MaxPool(2), Flatten(), Dense(120)],
                       input_shape=(32, 32, 3))
    assert model.shapes() == [("conv1", (6, 28, 28)), ("maxpool1", (6, 14, 14)),
                              ("conv2", (16, 10, 10)), ("maxpool2", (16, 5, 5)),
                              ("flatten1", (400,)), ("fc1", (120,))]
    assert model.output_shape == (120,)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 120)


def test_strict_error_names_the_layer_and_floor_override_accepts_it():
    with pytest.raises(ValueError,
                       match=r"Conv 'conv2': output size O = .*\(7 − 3 \+ 2·0\)/3 \+ 1"):
        Sequential([Conv(4, 3), Conv(4, 3, stride=3)], "9x9x1", rounding="strict")
    model = Sequential([Conv(4, 3), Conv(4, 3, stride=3)], "9x9x1", rounding="floor")
    assert model.output_shape == (4, 2, 2)


def test_explicit_layer_rounding_wins_over_the_sequential():
    with pytest.raises(ValueError, match=r"is not an integer"):
        Sequential([Conv(4, 3, stride=3, rounding="strict")], "7x7x1", rounding="floor")


def test_shrink_to_zero_is_an_error_naming_the_layer():
    with pytest.raises(ValueError, match=r"MaxPool 'maxpool3': the volume shrinks to 0"):
        Sequential([MaxPool(2), MaxPool(2), MaxPool(2, rounding="floor")], "4x4x1")


def test_dense_after_a_volume_asks_for_flatten():
    with pytest.raises(ValueError, match=r"Dense 'fc1' needs a flat input.*add Flatten\(\)"):
        Sequential([Conv(4, 3), Dense(10)], "8x8x1")


def test_channels_last_input_gets_a_permute_hint():
    model = Sequential([Conv(4, 3)], "8x8x3")
    with pytest.raises(ValueError, match=r"channels-last data: use x\.permute\(0, 3, 1, 2\)"):
        model(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match=r"does not match the model's input shape"):
        model(torch.zeros(2, 3, 9, 9))
    with pytest.raises(TypeError, match=r"needs a float tensor, got dtype torch.uint8"):
        model(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_lazy_build_without_input_shape():
    model = Sequential([Conv(4, 3), GlobalAvgPool(), Dense(2)])
    assert model.input_shape is None and not list(model.parameters())
    assert model(torch.zeros(1, 3, 6, 6, dtype=torch.float64)).shape == (1, 2)
    assert model.input_shape == (3, 6, 6) and model.output_shape == (2,)
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_flat_input_and_plain_torch_modules():
    model = Sequential([Dense(16), nn.ReLU(), nn.Linear(16, 3)], input_shape=20)
    assert model.input_shape == (20,) and model.output_shape == (3,)
    assert model(torch.zeros(4, 20)).shape == (4, 3)
    with pytest.raises(ValueError, match=r"layer 1 \(ReLU\) has no spec token"):
        model.to_spec()


def test_keras_input_layer_sets_the_shape_without_adding_a_module():
    model = Sequential()
    model.add(keras.Input((8, 8, 2)))
    model.add(Conv(3, 3))
    assert len(model) == 1 and model.output_shape == (3, 6, 6)


def test_add_rejects_non_modules():
    with pytest.raises(TypeError, match=r"layer must be a torch.nn.Module.*got 'relu'"):
        Sequential().add("relu")


@pytest.mark.parametrize("build", [
    _keras_tutorial_model,
    lambda: Sequential([Conv(8, 3, padding="same", activation="relu"), BatchNorm(), MaxPool(2),
                        Conv(8, 2, stride=2, padding="same", bias=False), GlobalAvgPool(),
                        Dropout(0.3), Dense(10)], "28x28x1"),
    lambda: Sequential([keras.Conv2D(4, (3, 5), strides=(2, 1), padding="same"),
                        keras.AveragePooling2D(), keras.BatchNormalization(), keras.Flatten(),
                        keras.Dense(5)], (28, 28, 1)),
])
def test_architecture_rebuilds_the_same_model(build):
    model = build().eval()
    arch = model.architecture
    rebuilt = Sequential.from_architecture(arch).eval()
    assert rebuilt.to_spec() == arch["spec"]
    assert arch["input_shape"] == list(model.input_shape)
    state = model.state_dict()
    rebuilt_shapes = {k: v.shape for k, v in rebuilt.state_dict().items()}
    assert rebuilt_shapes == {k: v.shape for k, v in state.items()}
    rebuilt.load_state_dict(state)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_optimizer_made_after_construction_trains_every_parameter():
    model = Sequential([Conv(4, 3), ReLU(), Flatten(), Dense(3)], "6x6x1")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    labels = torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 6, 6)), labels)
    loss.backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_flat_architecture_round_trip():
    model = Sequential([Dense(8, activation="tanh"), Dropout(0.1), Dense(3)], input_shape=(20,))
    rebuilt = Sequential.from_architecture(model.architecture)
    assert rebuilt.input_shape == (20,)
    assert rebuilt.to_spec() == "fc(8,activation=tanh) dropout(0.1) fc(3)"
    with pytest.raises(ValueError, match=r"architecture must be \{'type': 'spec'"):
        Sequential.from_architecture({"type": "registry", "name": "lenet5"})
