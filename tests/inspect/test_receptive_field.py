"""Receptive fields: hand-computed values (LeNet-5, VGG-16) and the gradient check on several nets."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.inspect.receptive_field import (
    empirical_receptive_field,
    receptive_fields,
    resolve_input_shape,
    unit_region,
)

# ----------------------------------------------------------------------------- test models


def lenet5() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 10),
    )


def vgg16_layout(width: int = 2) -> nn.Sequential:
    """VGG-16's 13 convs (3x3, padding 1) and 5 max pools, with few channels (same geometry)."""
    layers, channels = [], 3
    for convs in (2, 2, 3, 3, 3):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def small_vgg() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )


class ResBlockNet(nn.Module):
    """Stem, then a ResNet basic block with stride 2 and a 1x1 projection on the skip path."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.skip = nn.Conv2d(4, 8, 1, stride=2)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.stem(x))
        out = self.conv2(self.relu(self.bn1(self.conv1(x))))
        return self.relu(out + self.skip(x))


class InceptionNet(nn.Module):
    """Two branches of different kernels concatenated: the field is the larger (union)."""

    def __init__(self):
        super().__init__()
        self.branch1 = nn.Conv2d(1, 2, 1)
        self.branch5 = nn.Conv2d(1, 2, 5, padding=2)

    def forward(self, x):
        return F.relu(torch.cat([self.branch1(x), self.branch5(x)], dim=1))


def dilated_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, dilation=2), nn.ReLU(),
        nn.Conv2d(3, 3, 3, dilation=3, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, dilation=2, padding=1),
    )


class FunctionalNet(nn.Module):
    """Parameters used through torch.nn.functional, 'same' padding, an adaptive max pool."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 1, 3, 3))
        self.conv = nn.Conv2d(3, 3, 5, padding="same")

    def forward(self, x):
        x = F.max_pool2d(F.relu(F.conv2d(x, self.weight, stride=2)), 2)
        return F.adaptive_max_pool2d(self.conv(x), 2)


def by_name(model, shape):
    return {info.name: info for info in receptive_fields(model, shape)}


# ----------------------------------------------------------------------------- hand values


def test_lenet5_fields_match_hand_arithmetic():
    info = by_name(lenet5(), "32x32x1")
    # conv5: 1 + 4·1 = 5; pool2: 5 + 1·1 = 6, jump 2; conv5: 6 + 4·2 = 14; pool2: 14 + 1·2 = 16, jump 4
    assert [(info[n].size, info[n].jump) for n in ("0", "2", "3", "5")] == [
        ((5, 5), (1, 1)), ((6, 6), (2, 2)), ((14, 14), (2, 2)), ((16, 16), (4, 4))]
    # relu keeps the field; flatten/linear see the whole 5x5 grid: 16 + (5 − 1)·4 = 32 = the image
    assert info["1"].size == (5, 5)
    assert info["7"].size == (32, 32) and not info["7"].exceeds_input
    # centres: conv5 (5 − 1)/2 = 2; pool2 2 + 0.5·1 = 2.5; conv5 2.5 + 2·2 = 6.5; pool2 6.5 + 0.5·2
    assert [info[n].start for n in ("0", "2", "3", "5")] == [
        (2.0, 2.0), (2.5, 2.5), (6.5, 6.5), (7.5, 7.5)]


def test_vgg16_fields_match_hand_arithmetic():
    fields = [i for i in receptive_fields(vgg16_layout(), "224x224x3") if i.op == "MaxPool2d"]
    # each 3x3 conv adds 2·jump, each 2x2 pool adds 1·jump and doubles it:
    # block1 1+2+2=5 -> 6 (j2); block2 6+4+4=14 -> 16 (j4); block3 16+3·8=40 -> 44 (j8);
    # block4 44+3·16=92 -> 100 (j16); block5 100+3·32=196 -> 212 (j32)
    assert [f.size[0] for f in fields] == [6, 16, 44, 100, 212]
    assert [f.jump[0] for f in fields] == [2, 4, 8, 16, 32]
    # padding 1 moves the top by −jump per conv: −2, −6, −18, −42, −90; centre −90 + 211/2
    assert [f.top[0] for f in fields] == [-2, -6, -18, -42, -90]
    assert fields[-1].start == (15.5, 15.5)
    assert not fields[-1].exceeds_input  # 212 < 224
    assert by_name(vgg16_layout(), "128x128x3")["30"].exceeds_input  # 212 > 128


def test_dilation_and_padding_arithmetic():
    info = by_name(dilated_net(), "20x20x1")
    # d2 k3: k_eff 5 -> 5; d3 k3: k_eff 7 -> 5 + 6 = 11, top −2; pool d2 k3: k_eff 5 -> 11 + 4·1 = 15
    assert [(info[n].size[0], info[n].jump[0], info[n].top[0]) for n in ("0", "2", "4")] == [
        (5, 1, 0), (11, 1, -2), (15, 2, -3)]


def test_branches_take_the_union_of_fields():
    info = by_name(InceptionNet(), "9x9x1")
    assert info["branch1"].size == (1, 1)
    assert info["branch5"].size == (5, 5)
    assert info["cat"].size == (5, 5) and info["cat"].top == (-2, -2)

    res = by_name(ResBlockNet(), "12x12x1")
    # main path: stem 3, conv1 (s2) 5 then jump 2, conv2 5 + 2·2 = 9; skip: 1x1 s2 on stem = 3
    assert res["skip"].size == (3, 3) and res["conv2"].size == (9, 9)
    assert res["add"].size == (9, 9) and res["add"].jump == (2, 2)


def test_functional_ops_same_padding_and_adaptive_pool():
    info = by_name(FunctionalNet(), "16x16x1")
    # F.conv2d k3 s2: 3, j2; F.max_pool2d 2: 3 + 2 = 5, j4; conv k5 'same' (pad 2): 5 + 4·4 = 21,
    # top −8; adaptive 3x3 -> 2x2 does not divide: the whole axis, 21 + 2·4 = 29
    assert info["conv2d"].size == (3, 3) and info["max_pool2d"].jump == (4, 4)
    assert info["conv"].size == (21, 21) and info["conv"].top == (-8, -8)
    assert info["adaptive_max_pool2d"].size == (29, 29)


# ----------------------------------------------------------------------------- gradient check


def assert_mask_is_box(model, layer, unit, shape, *, dense=True):
    """The gradient mask fills the reported (clipped) box exactly.

    Dilated kernels skip pixels, so their field is a grid inside the box: with ``dense=False``
    only the mask's bounding box must equal the reported box.
    """
    region = unit_region(model, layer, unit, shape)
    mask = empirical_receptive_field(model, layer, unit, shape)
    top, left, bottom, right = region.clipped
    if dense:
        expected = torch.zeros_like(mask)
        expected[top:bottom, left:right] = True
        assert torch.equal(mask, expected), (layer, unit, region)
    else:
        rows, cols = mask.nonzero().unbind(1)
        bounding = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
        assert bounding == region.clipped


@pytest.mark.parametrize(("model", "shape", "layer", "unit"), [
    (lenet5(), "32x32x1", "3", (2, 7)),
    (lenet5(), "32x32x1", "5", (4, 1)),
    (lenet5(), "32x32x1", "7", (0, 0)),
    (small_vgg(), "16x16x1", "5", (0, 0)),      # corner: the field is clipped by the padding
    (small_vgg(), "16x16x1", "8", (2, 1)),
    (ResBlockNet(), "12x12x1", "add", (0, 5)),
    (ResBlockNet(), "12x12x1", "skip", (3, 3)),
    (InceptionNet(), "9x9x1", "cat", (4, 4)),
    (FunctionalNet(), "16x16x1", "max_pool2d", (1, 2)),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveMaxPool2d(4)), "16x16x1", "1", (1, 2)),
], ids=["lenet-conv2", "lenet-pool2", "lenet-fc", "vgg-corner", "vgg-pool", "resnet-add",
        "resnet-skip", "inception-cat", "functional-pool", "adaptive-pool"])
def test_gradient_is_nonzero_exactly_inside_the_reported_field(model, shape, layer, unit):
    assert_mask_is_box(model, layer, unit, shape)


@pytest.mark.parametrize(("layer", "unit"), [("0", (0, 0)), ("2", (5, 9)), ("4", (3, 2))])
def test_dilated_field_spans_the_reported_box(layer, unit):
    assert_mask_is_box(dilated_net(), layer, unit, "20x20x1", dense=False)
    mask = empirical_receptive_field(dilated_net(), "0", (0, 0), "20x20x1")
    assert mask[:5, :5].sum() == 9  # a 3x3 kernel with dilation 2 reads every other pixel


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["conv", "max", "avg"]), st.integers(1, 4),
                          st.integers(1, 2), st.integers(0, 1), st.integers(1, 2)),
                min_size=1, max_size=3),
       st.data())
def test_gradient_matches_field_for_random_stacks(layers, data):
    modules = []
    size, strides_fit = 24, True
    for kind, k, s, p, d in layers:
        p = min(p, k // 2)  # pooling needs padding <= kernel/2
        span = size + 2 * p - (1 if kind == "avg" else d) * (k - 1) - 1
        strides_fit &= span % s == 0  # else the windows miss the last rows/columns (floor)
        size = span // s + 1
        if kind == "conv":
            modules += [nn.Conv2d(2, 2, k, s, p, dilation=d), nn.ReLU()]
        elif kind == "max":
            modules.append(nn.MaxPool2d(k, s, p, dilation=d))
        else:
            modules.append(nn.AvgPool2d(k, s, p))
    model = nn.Sequential(nn.Conv2d(1, 2, 1), *modules)
    last = str(len(model) - 1)
    try:
        grid = model(torch.zeros(1, 1, 24, 24)).shape[-2:]
    except RuntimeError:  # the stack shrinks a 24x24 image to nothing: not a valid model
        assume(False)
    unit = (data.draw(st.integers(0, grid[0] - 1)), data.draw(st.integers(0, grid[1] - 1)))
    if strides_fit and all(d == 1 and stride <= k for _, k, stride, _, d in layers):
        assert_mask_is_box(model, last, unit, "24x24x1")
    else:  # dilation or stride > kernel leaves holes, and a hole can sit on the clipped edge;
        # a stride that does not fit drops the last rows/columns, which an edge unit's box
        # (the arithmetic's, cut only to the image) still counts: documented in unit_region
        region = unit_region(model, last, unit, "24x24x1")
        mask = empirical_receptive_field(model, last, unit, "24x24x1")
        top, left, bottom, right = region.clipped
        assert mask.any() and mask[top:bottom, left:right].sum() == mask.sum()
        if region.box == region.clipped:  # inside the image the outermost taps are always hit
            assert_mask_is_box(model, last, unit, "24x24x1", dense=False)


def test_uneven_adaptive_pool_reports_an_upper_bound():
    # 3x3 -> 2x2 windows overlap unevenly: the reported field is the whole axis, which contains
    # (and here exceeds) what any one unit reads
    model = FunctionalNet()
    region = unit_region(model, "adaptive_max_pool2d", (1, 0), "16x16x1")
    mask = empirical_receptive_field(model, "adaptive_max_pool2d", (1, 0), "16x16x1")
    top, left, bottom, right = region.clipped
    assert mask[top:bottom, left:right].sum() == mask.sum() < (bottom - top) * (right - left)


def test_empirical_field_leaves_the_model_unchanged():
    model = small_vgg().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    empirical_receptive_field(model, "8", (0, 0), "16x16x1")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- regions, errors


def test_unit_region_box_and_clipping():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2))
    # field 4, jump 2, top −1: unit (0, 0) covers rows −1..2, unit (3, 1) rows 5..8, cols 1..4
    first = unit_region(model, "1", (0, 0), "8x8x1")
    assert first.box == (-1, -1, 3, 3) and first.clipped == (0, 0, 3, 3)
    last = unit_region(model, "1", (3, 1), "8x8x1")
    assert last.box == (5, 1, 9, 5) and last.clipped == (5, 1, 8, 5)


def test_unit_outside_grid_and_unknown_layer_are_errors():
    with pytest.raises(ValueError, match=r"unit \(14, 0\) is outside the 14x14 output grid"):
        unit_region(lenet5(), "2", (14, 0), "32x32x1")
    with pytest.raises(ValueError, match=r"'conv9' is not a layer of this model; expected one of \['0', '1'"):
        unit_region(lenet5(), "conv9", (0, 0), "32x32x1")


def test_shared_module_calls_are_named_by_call_number():
    model = ResBlockNet()  # self.relu is called three times
    calls = [(i.node, i.size) for i in receptive_fields(model, "12x12x1") if i.name == "relu"]
    # after the stem: 3; after bn1 (stem 3 + conv1 2·1): 5; after the add: 9
    assert calls == [("relu", (3, 3)), ("relu#2", (5, 5)), ("relu#3", (9, 9))]
    assert unit_region(model, "relu#3", (0, 0), "12x12x1").box == (-4, -4, 5, 5)
    assert_mask_is_box(model, "relu#2", (1, 1), "12x12x1")


def test_input_shape_resolution():
    plain = nn.Conv2d(3, 4, 3)
    assert resolve_input_shape(plain, (32, 24, 3)) == (3, 32, 24)
    with pytest.raises(ValueError, match="input_shape is required: Conv2d does not record"):
        resolve_input_shape(plain)
    plain.input_size = (20, 10)  # registry models: in_channels + input_size
    assert resolve_input_shape(plain) == (3, 20, 10)
    seq = nn.Sequential(nn.Flatten())
    seq.input_shape = (1, 8, 8)  # cnnkit Sequential: (C, H, W)
    assert resolve_input_shape(seq) == (1, 8, 8)


def test_untraceable_model_falls_back_to_call_order(caplog):
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            for _ in range(int(x.sum().item()) + 1):  # a loop count read from the data
                x = self.conv(x)
            return self.pool(x)

    with caplog.at_level(logging.WARNING):
        info = by_name(DataDependent(), "10x10x1")
    assert "could not trace DataDependent" in caplog.text
    assert info["conv"].size == (3, 3) and info["pool"].size == (4, 4)
