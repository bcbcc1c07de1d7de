"""The registry: names, lookup errors, create() arguments, register(), build_architecture()."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch import nn

from cnnkit.models import registry
from cnnkit.models.base import ZooModel
from cnnkit.models.registry import build_architecture, create, describe, list_models, names


class TinyNet(ZooModel):
    """A two-layer stand-in registered by the tests."""

    def __init__(self, *, num_classes, in_channels, input_size, hidden=4):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.fc = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes):
        return nn.Linear(self.hidden, num_classes)

    def forward_features(self, x):
        return torch.relu(self.conv(x))

    def forward_head(self, x, pre_logits=False):
        x = x.mean(dim=(2, 3))  # (N, C, H, W) -> (N, C)
        return x if pre_logits else self.fc(x)


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that the test may add to; the real one is restored afterwards."""
    names()  # load the zoo first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_names_are_sorted_and_described():
    listed = names()
    assert listed == sorted(listed) and len(listed) == len(set(listed))
    infos = list_models()
    assert [info.name for info in infos] == listed
    assert all(info.description for info in infos)
    assert describe("lenet5").default_input_size == (32, 32)
    assert describe("keras_mnist").default_input_size == (28, 28)
    assert describe("airbench").default_input_size == (32, 32)
    for name in ("alexnet", "zfnet", "vgg16", "googlenet", "resnet50", "densenet121"):
        assert describe(name).default_input_size == (224, 224)


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(ValueError, match=r"unknown model name 'resnet81'\. Did you mean "
                                         r"'resnet18'\? Available models: .*lenet5"):
        create("resnet81")
    with pytest.raises(ValueError, match=r"unknown model name 'xyz'\. Available models: airbench"):
        describe("xyz")


def test_create_defaults_and_input_size_forms():
    model = create("lenet5")
    assert (model.num_classes, model.in_channels, model.input_size) == (10, 3, (32, 32))
    assert create("lenet5", input_size=28).input_size == (28, 28)
    assert create("lenet5", input_size=[28, 30]).input_size == (28, 30)
    with pytest.raises(TypeError, match=r"input_size must be an int or a tuple of 2 ints, got "
                                        r"'32'"):
        create("lenet5", input_size="32")
    with pytest.raises(ValueError, match=r"num_classes must be >= 1, got 0"):
        create("lenet5", num_classes=0)
    with pytest.raises(TypeError, match=r"in_channels must be a positive int, got 3\.0"):
        create("lenet5", in_channels=3.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        create("keras_mnist", colour=True)


def test_register_records_the_architecture(scratch_registry):
    @registry.register("tiny", description="a tiny net", default_input_size=(8, 6))
    def tiny(*, num_classes, in_channels, input_size, **kwargs):
        return TinyNet(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                       **kwargs)

    assert "tiny" in names()
    model = create("tiny", num_classes=3, in_channels=2, hidden=5)
    assert model.input_size == (8, 6)
    arch = model.architecture
    assert arch == {"type": "registry", "name": "tiny",
                    "kwargs": {"num_classes": 3, "in_channels": 2, "input_size": [8, 6],
                               "hidden": 5}}
    rebuilt = build_architecture(json.loads(json.dumps(arch)))
    assert rebuilt.hidden == 5 and rebuilt(torch.randn(1, 2, 8, 6)).shape == (1, 3)

    def other_tiny(**kwargs):
        return tiny(**kwargs)

    with pytest.raises(ValueError, match="model name 'tiny' is already registered by "
                                         r"test_registry\.test_register_records_the_architecture"):
        registry.register("tiny", description="again", default_input_size=8)(other_tiny)
    with pytest.raises(TypeError, match="keyword arguments of 'tiny' must be JSON-able"):
        create("tiny", hidden=object())


def test_model_built_outside_the_registry_has_no_architecture():
    model = TinyNet(num_classes=2, in_channels=1, input_size=(4, 4))
    with pytest.raises(ValueError, match=r"build it with cnnkit\.models\.create"):
        model.architecture  # noqa: B018


def test_reset_classifier_keeps_device_dtype_and_updates_architecture():
    model = create("resnet18", num_classes=4, input_size=32).double()
    model.reset_classifier(6)
    assert model.get_classifier().weight.dtype == torch.float64
    assert model.fc.out_features == 6
    assert model.architecture["kwargs"]["num_classes"] == 6
    with pytest.raises(ValueError, match="num_classes must be >= 1, got -1"):
        model.reset_classifier(-1)


def test_build_architecture_rejects_bad_dicts():
    with pytest.raises(TypeError, match=r"arch must be a dict with a 'type' key, got 'resnet18'"):
        build_architecture("resnet18")
    with pytest.raises(ValueError, match=r"arch\['type'\] must be 'registry' or 'spec', got "
                                         r"'zoo'"):
        build_architecture({"type": "zoo", "name": "resnet18"})
    with pytest.raises(ValueError, match=r"lacks the keys \['kwargs'\]"):
        build_architecture({"type": "registry", "name": "resnet18"})


@pytest.mark.skipif(importlib.util.find_spec("cnnkit.models.sequential") is None,
                    reason="cnnkit.models.sequential is not written yet")
def test_build_architecture_spec_goes_to_sequential():
    sequential = importlib.import_module("cnnkit.models.sequential")
    model = sequential.Sequential.from_spec("conv(4,3) relu flatten fc(3)", input_shape="8x8x1")
    rebuilt = build_architecture(json.loads(json.dumps(model.architecture)))
    assert isinstance(rebuilt, sequential.Sequential)
    assert rebuilt.to_spec() == model.to_spec()
    assert rebuilt.input_shape == (1, 8, 8)
