"""Model summary: output volumes, parameters (trainable/frozen), MACs, memory, depth, JSON."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnkit.inspect.summary import summary


def mnist_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(13 * 13 * 32, 10),
    )


class Twice(nn.Module):
    """One conv used twice (shared weights) inside a block."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))
        self.shared = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.shared(self.shared(self.block(x)))


def test_table_writes_volumes_as_tutorials_do():
    text = str(summary(mnist_net(), "28x28x1"))
    assert "26x26x32" in text and "13x13x32" in text and "5408" in text
    assert "input 28x28x1" in text
    assert "Total params: 54,410" in text  # conv 32·(9 + 1) = 320, dense 5408·10 + 10 = 54,090


def test_rows_shapes_params_macs_and_fields():
    s = summary(mnist_net(), "28x28x1")
    conv, relu, pool, flat, dense = s.rows
    assert conv.output_shape == (32, 26, 26) and pool.output_shape == (32, 13, 13)
    assert flat.output_shape == (5408,) and dense.output_shape == (10,)
    assert conv.trainable_params == 32 * (1 * 3 * 3 + 1)
    assert conv.macs == 26 * 26 * 32 * (1 * 3 * 3)  # out elements × (C_in/groups)·kh·kw
    assert dense.macs == 5408 * 10
    assert relu.macs == pool.macs == 0
    assert s.macs == 26 * 26 * 32 * 9 + 5408 * 10
    assert conv.receptive_field == (3, 3) and pool.receptive_field == (4, 4)
    assert pool.jump == (2, 2)
    # flatten sees the whole 13x13 grid: 4 + 12·2 = 28, the whole image
    assert dense.receptive_field == (28, 28) and not dense.rf_exceeds_input


def test_grouped_conv_macs():
    s = summary(nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)), "10x10x4")
    assert s.rows[0].macs == 8 * 8 * 8 * (2 * 3 * 3)  # each output sums 4/2 channels · 3·3


def test_trainable_and_frozen_totals():
    model = mnist_net()
    model[0].weight.requires_grad_(False)
    s = summary(model, "28x28x1")
    assert s.rows[0].frozen_params == 32 * 9 and s.rows[0].trainable_params == 32
    assert s.frozen_params == 288
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_shared_module_counted_once_and_depth_grouping():
    model = Twice()
    s = summary(model, "6x6x2")
    assert [r.name for r in s.rows] == ["block.0", "block.1", "shared", "shared"]
    assert [r.params for r in s.rows] == [2 * 2 * 9 + 2, 2 + 2, 2 * 2 * 9 + 2, 0]
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.rows[3].receptive_field == (7, 7)  # three 3x3 convs: 1 + 2 + 2 + 2

    grouped = summary(model, "6x6x2", depth=1)
    assert [(r.name, r.type) for r in grouped.rows] == [
        ("block", "Sequential"), ("shared", "Conv2d"), ("shared", "Conv2d")]
    assert grouped.rows[0].params == 38 + 4 and grouped.rows[0].receptive_field == (3, 3)
    assert grouped.macs == s.macs
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        summary(model, "6x6x2", depth=0)


def test_activation_memory_for_one_image():
    s = summary(nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU()), "28x28x1")
    assert s.activation_bytes == 2 * (32 * 26 * 26) * 4  # two outputs of 21,632 float32


def test_field_larger_than_input_is_flagged():
    model = nn.Sequential(nn.Conv2d(1, 1, 5, padding=2), nn.Conv2d(1, 1, 5, padding=2))
    s = summary(model, "6x6x1")
    assert s.rows[1].receptive_field == (9, 9) and s.rows[1].rf_exceeds_input
    assert "9x9*" in str(s)


def test_mode_and_statistics_are_left_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5)).train()
    model[2].eval()
    before = model[1].running_mean.clone()
    summary(model, "8x8x1")
    assert model[1].training and not model[2].training
    assert torch.equal(model[1].running_mean, before)


def test_input_shape_from_the_model():
    model = mnist_net()
    model.input_shape = (1, 28, 28)  # as cnnkit Sequential records it: (C, H, W)
    assert summary(model).rows[0].output_shape == (32, 26, 26)
    with pytest.raises(ValueError, match="input_shape is required"):
        summary(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match="must look like HxWxC"):
        summary(mnist_net(), "28by28")


def test_flat_model_has_no_fields():
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    model.input_shape = (8,)
    s = summary(model)
    assert s.rows[0].receptive_field is None and s.rows[0].macs == 32
    assert "RF" in str(s)


def test_to_dict_is_json():
    data = json.loads(json.dumps(summary(mnist_net(), "28x28x1").to_dict()))
    assert data["total_params"] == 54410 and data["input"] == "28x28x1"
    assert data["rows"][0]["output"] == "26x26x32"
    assert data["rows"][0]["receptive_field"] == [3, 3]


def _registry():
    return pytest.importorskip("cnnkit.models.registry")


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "googlenet", "densenet121", "vgg11",
                                  "nin", "airbench", "keras_mnist", "alexnet"])
def test_registered_models_summarise(name):
    registry = _registry()
    if name not in registry.names():
        pytest.skip(f"{name} is not registered")
    size = {"alexnet": 64, "nin": 67, "googlenet": 64}.get(name, 32)
    model = registry.create(name, num_classes=3, in_channels=1, input_size=size)
    s = summary(model)
    assert s.traced  # fx must handle every zoo model (input checks included)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.rows[-1].output_shape == (3,)
    assert s.macs > 0 and all(r.receptive_field is not None for r in s.rows)


def test_torch_layers_show_in_the_compact_notation_of_architecture_strings():
    """#18 item 10: `cnnkit summary resnet18` rows read like Sequential's, not cut torch reprs."""
    from cnnkit.models import create

    rows = {row.name: f"{row.type}({row.args})"
            for row in summary(create("resnet18", num_classes=10, input_size=224), "224x224x3").rows}
    assert rows["conv1"] == "Conv2d(64,7,stride=2,padding=3,bias=False)"
    assert rows["bn1"] == "BatchNorm2d(64)"
    assert rows["maxpool"] == "MaxPool2d(3,stride=2,padding=1)"
    assert rows["layer2.0.downsample.0"] == "Conv2d(128,1,stride=2,bias=False)"
    assert rows["fc"] == "Linear(10)"
    lenet = {row.name: f"{row.type}({row.args})"
             for row in summary(create("lenet5", num_classes=10, in_channels=1), "32x32x1").rows}
    assert (lenet["conv1"], lenet["pool1"], lenet["fc1"]) == ("Conv2d(6,5)", "AvgPool2d(2)",
                                                              "Linear(120)")
