"""Feature maps: every child of a Sequential in order, hooks on other models, probabilities."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.inspect.feature_maps import class_probabilities, feature_maps, layer_kind


def lenet_like():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 10),
    )


def test_sequential_records_every_spatial_child_in_order():
    net = lenet_like()
    image = torch.rand(1, 28, 28)
    maps = feature_maps(net, image)
    got = [(m.name, m.kind, tuple(m.maps.shape)) for m in maps]
    assert got == [
        ("0", "conv", (6, 28, 28)), ("1", "activation", (6, 28, 28)), ("2", "pool", (6, 14, 14)),
        ("3", "conv", (16, 10, 10)), ("4", "activation", (16, 10, 10)), ("5", "pool", (16, 5, 5)),
    ]
    # The recorded tensors are the real intermediate values.
    after_conv = net[0](image[None])[0]
    assert torch.allclose(maps[0].maps, after_conv, atol=1e-6)
    assert torch.allclose(maps[1].maps, after_conv.relu(), atol=1e-6)
    assert torch.allclose(maps[2].maps, F.max_pool2d(after_conv.relu()[None], 2)[0], atol=1e-6)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.pool(self.act(self.norm(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def test_other_models_record_conv_activation_pool_and_restore_mode():
    net = Branchy().train()
    maps = feature_maps(net, torch.rand(3, 8, 8))
    assert [(m.name, m.kind, tuple(m.maps.shape)) for m in maps] == [
        ("stem", "conv", (4, 8, 8)), ("act", "activation", (4, 8, 8)), ("pool", "pool", (4, 4, 4))]
    assert net.training  # put back in training mode afterwards
    assert not net.stem._forward_hooks  # hooks removed
    chosen = feature_maps(net, torch.rand(3, 8, 8), layers=["norm"])
    assert [(m.name, m.kind) for m in chosen] == [("norm", "norm")]
    with pytest.raises(ValueError, match=r"layers \['nope'\] are not in the model"):
        feature_maps(net, torch.rand(3, 8, 8), layers=["nope"])


def test_image_checks():
    with pytest.raises(ValueError, match=r"image must be one \(C, H, W\) tensor"):
        feature_maps(lenet_like(), torch.rand(2, 1, 28, 28))
    with pytest.raises(TypeError, match=r"image must be a float tensor"):
        feature_maps(lenet_like(), torch.zeros(1, 28, 28, dtype=torch.uint8))


def test_layer_kinds():
    assert layer_kind(nn.GELU()) == "activation" and layer_kind(nn.AdaptiveAvgPool2d(1)) == "pool"
    assert layer_kind(nn.Linear(2, 2)) == "other" and layer_kind(nn.Conv2d(1, 1, 1)) == "conv"


def test_class_probabilities():
    net = lenet_like()
    image = torch.rand(1, 28, 28)
    names = [f"digit {k}" for k in range(10)]
    result = class_probabilities(net, image, names)
    assert result.class_names == names
    assert result.probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    net.eval()
    assert torch.allclose(result.probs, torch.softmax(net(image[None])[0], 0).detach(), atol=1e-6)
    assert class_probabilities(net, image).class_names[3] == "3"
    with pytest.raises(ValueError, match=r"class_names has 2 names but the model outputs 10 classes"):
        class_probabilities(net, image, ["a", "b"])
