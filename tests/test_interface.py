"""Every model (each registered zoo model, a spec-built and a Keras-built Sequential) has one interface.

``forward_head(forward_features(x))`` is the whole model, ``forward_stages`` returns what
``feature_info`` promises, and ``reset_head`` swaps the classifier (see cnnkit.models.features).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import cnnkit.models as models
from cnnkit.keras.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnkit.keras.models import Sequential as KerasSequential
from cnnkit.models.features import FeatureInfo, module_stride, stage_indices
from cnnkit.models.sequential import Sequential

#: The input side each model is tested at: 32, except those whose trunk needs more.
SIDES = {"alexnet": 64, "zfnet": 64}
#: Narrow fully connected layers (4096 wide in the papers) keep the test fast.
NARROW = ("alexnet", "zfnet", "vgg")


def _spec_model() -> Sequential:
    return Sequential.from_spec(
        "conv(4,3,padding=same) relu maxpool(2) conv(8,3,padding=same) relu maxpool(2) "
        "conv(8,3,padding=same) relu flatten fc(16) relu fc(10)", "16x16x1")


def _keras_model() -> KerasSequential:
    return KerasSequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(16, 16, 1)),
                            MaxPool2D(2), Conv2D(8, 3, activation="relu"), Flatten(),
                            Dense(10, activation="softmax")])


def _models():
    for name in models.names():
        side = SIDES.get(name, 32)
        kwargs = {"classifier_width": 64} if name.startswith(NARROW) else {}
        yield pytest.param(lambda name=name, side=side, kwargs=kwargs: models.create(
            name, num_classes=10, input_size=side, **kwargs), id=name)
    yield pytest.param(_spec_model, id="spec-sequential")
    yield pytest.param(_keras_model, id="keras-sequential")


@pytest.fixture(params=list(_models()))
def model(request):
    torch.manual_seed(0)
    return request.param().eval()


def test_every_registered_model_is_covered():
    assert set(SIDES) <= set(models.names())
    assert len(list(_models())) == len(models.names()) + 2


def test_features_then_head_is_the_whole_model(model):
    x = torch.randn(1, *model.input_shape)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        embedding = model.forward_head(features, pre_logits=True)
        expected = model(x)
    assert features.ndim == 4 and features.shape[0] == 1
    torch.testing.assert_close(logits, expected)
    assert logits.shape == (1, model.num_classes) == (1, 10)
    assert embedding.ndim == 2 and embedding.shape[0] == 1


def test_stages_match_feature_info(model):
    channels, height, width = model.input_shape
    info = model.feature_info
    x = torch.randn(1, channels, height, width)
    with torch.no_grad():
        stages = model.forward_stages(x)
        features = model.forward_features(x)
    assert info and all(isinstance(entry, FeatureInfo) for entry in info)
    assert len(stages) == len(info)
    strides = [entry.stride for entry in info]
    assert all(a < b for a, b in zip(strides, strides[1:])), strides
    for entry, stage in zip(info, stages):
        assert stage.shape[:2] == (1, entry.channels), entry
        expected = height / entry.stride
        assert expected / 2 <= stage.shape[2] <= expected + 1, (entry, tuple(stage.shape))
        assert expected / 2 <= stage.shape[3] * height / width <= expected + 1
    torch.testing.assert_close(stages[-1], features)


def test_reset_head_gives_new_logits(model):
    model.reset_head(5)
    x = torch.randn(1, *model.input_shape)
    with torch.no_grad():
        assert model(x).shape == (1, 5)
        assert model.forward_head(model.forward_features(x)).shape == (1, 5)
    assert model.num_classes == 5
    assert model.get_classifier() is model.get_submodule(model.classifier_path)


def test_feature_info_is_frozen():
    entry = FeatureInfo("layer1", 64, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.stride = 8


def test_spec_stages_are_the_layers_before_each_downsampling():
    info = _spec_model().feature_info
    assert [(e.name, e.channels, e.stride) for e in info] == [
        ("relu1", 4, 1), ("relu2", 8, 2), ("relu3", 8, 4)]


def test_stage_helpers():
    assert stage_indices([1, 1, 2, 1, 2]) == [1, 3, 4]
    assert stage_indices([2, 1]) == [1]
    block = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, stride=2), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2))
    assert module_stride(block) == 4


class _Stages(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone.forward_stages(x))


def test_forward_stages_traces():
    net = models.create("resnet18", num_classes=10, input_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    traced = torch.jit.trace(_Stages(net), x)
    for got, want in zip(traced(x), net.forward_stages(x)):
        torch.testing.assert_close(got, want)


def test_forward_stages_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = _spec_model().eval()
    x = torch.randn(1, *net.input_shape)
    path = tmp_path / "stages.onnx"
    torch.onnx.export(_Stages(net), (x,), str(path), dynamo=False)
    session = ort.InferenceSession(str(path))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = net.forward_stages(x)
    assert len(got) == len(want) == 3
    for array, tensor in zip(got, want):
        torch.testing.assert_close(torch.from_numpy(array), tensor, rtol=1e-5, atol=1e-5)


def test_lazy_sequential_asks_for_its_input_shape():
    lazy = Sequential.from_spec("conv(4,3) relu flatten fc(10)")
    with pytest.raises(ValueError, match="needs the input shape"):
        lazy.forward_features(torch.zeros(1, 1, 8, 8))
    lazy(torch.zeros(1, 1, 8, 8))  # the first batch builds it
    assert [(e.name, e.channels, e.stride) for e in lazy.feature_info] == [("relu1", 4, 1)]
