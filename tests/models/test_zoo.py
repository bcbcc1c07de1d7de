"""Every registered model on a tiny input, the input-size arithmetic, and torchvision naming."""
from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from torch import nn

from cnnkit.models.base import layer_output_size
from cnnkit.models.registry import build_architecture, create, names
from cnnkit.models.zoo.densenet import remap_legacy_keys

# Smallest sensible test input per model (32x32 unless the arithmetic needs more) and narrow
# fully connected heads (4096 wide by default) to keep the test fast. A key "name/variant" is a
# second layout of a registered model: those that pick a layout from input_size ("small" up to
# 64x64) are tested in both.
TINY = {
    "alexnet": (63, {"classifier_width": 32}),
    "zfnet": (53, {"classifier_width": 32}),
    "nin": (67, {}),  # the imagenet layout
    "nin/small": (32, {}),
    "densenet121/imagenet": (32, {"stem": "imagenet"}),  # densenet121 at 32x32 is the small stem
    "resnet18/imagenet": (32, {"stem": "imagenet"}),
    "keras_mnist": (28, {}),
    "vgg11": (32, {"classifier_width": 32}),
    "vgg16": (32, {"classifier_width": 32}),
    "vgg11_bn": (32, {"classifier_width": 32}),
    "vgg16_bn": (32, {"classifier_width": 32}),
}


VARIANTS = sorted(key for key in TINY if "/" in key)


def tiny_model(key: str, in_channels: int = 3, num_classes: int = 7):
    size, kwargs = TINY.get(key, (32, {}))
    model = create(key.split("/")[0], num_classes=num_classes, in_channels=in_channels,
                   input_size=size, **kwargs)
    return model, torch.randn(2, in_channels, size, size)


def test_the_tutorial_models_are_registered():
    expected = {"lenet5", "keras_mnist", "alexnet", "zfnet", "vgg11", "vgg16", "nin",
                "googlenet", "resnet18", "resnet34", "resnet50", "densenet121", "airbench"}
    assert expected <= set(names())


@pytest.mark.parametrize("name", names() + VARIANTS)
def test_forward_and_gradient_on_every_parameter(name):
    model, x = tiny_model(name, in_channels=1)  # grey images; the round trip test uses RGB
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {param_name}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient in {param_name}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", names() + VARIANTS)
def test_interface_and_round_trips(name, tmp_path):
    model, x = tiny_model(name)
    model.eval()
    assert (model.num_classes, model.in_channels) == (7, 3)
    assert model.input_size == (x.shape[2], x.shape[3])
    with torch.no_grad():
        expected = model(x)
        assert expected.shape == (2, 7) and torch.isfinite(expected).all()
        volume = model.forward_features(x)
        embedding = model.features(x)
        assert volume.ndim == 4 and volume.shape[0] == 2
        torch.testing.assert_close(model.forward_head(volume), expected)
    assert embedding.ndim == 2 and embedding.shape[0] == 2

    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    rebuilt = build_architecture(model.architecture)
    assert type(rebuilt) is type(model)
    rebuilt.load_state_dict(load_file(str(path)), strict=True)
    rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), expected, rtol=0, atol=0)

    assert isinstance(model.get_classifier(), nn.Module)
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        torch.testing.assert_close(model.features(x), embedding)
    assert model.architecture["kwargs"]["num_classes"] == 3


# Minimal input sides worked out by hand with O = floor((W - K + 2P)/S) + 1 from each layer list
# (ceil for the small NiN's pools). nin at 66 and 67 is the imagenet layout (sides > 64).
MINIMUM = {"alexnet": 63, "zfnet": 53, "nin": 67, "nin/small": 4, "vgg11": 32, "vgg16": 32,
           "densenet121": 8, "densenet121/imagenet": 29, "airbench": 9, "keras_mnist": 6,
           "lenet5": 12}
# how to ask for the layout whatever the size (the size picks it otherwise)
LAYOUT = {"nin/small": {"layout": "small"}, "densenet121/imagenet": {"stem": "imagenet"}}
# how the too-small error says to get a smaller minimum
FIX = {"nin": r"pass layout='small' \(the CIFAR-10 NiN: inputs from 4x4",
       "densenet121/imagenet": r"pass stem='small' \(inputs from 8x8"}


@pytest.mark.parametrize("key", sorted(MINIMUM))
def test_smallest_input_works_and_one_less_fails(key):
    name, smallest = key.split("/")[0], MINIMUM[key]
    kwargs = {**TINY.get(key, (0, {}))[1], **LAYOUT.get(key, {})}
    model = create(name, num_classes=4, in_channels=1, input_size=smallest, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, smallest, smallest)).shape == (1, 4)
    expected = (rf"{name} cannot take input_size=.*The smallest input that works is "
                rf"{smallest}x{smallest}.*{FIX.get(key, '')}")
    with pytest.raises(ValueError, match=expected):
        create(name, in_channels=1, input_size=smallest - 1, **kwargs)


def test_too_small_error_names_the_layer_and_the_formula():
    with pytest.raises(ValueError, match=r"alexnet cannot take input_size=\(32, 32\): the feature "
                                         r"map shrinks to 0x0 at layer 'features\.12' "
                                         r"\(MaxPool2d\(kernel_size=3, stride=2, padding=0\); "
                                         r"O = floor\(\(1 - 3 \+ 2\*0\)/2\) \+ 1 = 0"):
        create("alexnet", input_size=32)
    with pytest.raises(ValueError, match=r"vgg11 cannot take input_size=\(28, 28\).*resnet18"):
        create("vgg11", input_size=(28, 28))


def test_non_square_input():
    model = create("resnet18", num_classes=5, input_size=(32, 48)).eval()
    assert model(torch.randn(1, 3, 32, 48)).shape == (1, 5)
    with pytest.raises(ValueError, match=r"vgg16 cannot take input_size=\(64, 16\)"):
        create("vgg16", input_size=(64, 16))


def test_wrong_channels_and_wrong_size_are_clear_errors():
    model = create("resnet18", in_channels=1, input_size=32)
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 1, H, W\), got "
                                         r"\(2, 3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32))
    lenet = create("lenet5", in_channels=1, input_size=28)
    with pytest.raises(ValueError, match=r"built for 28x28 images.*input_size=\(32, 32\)"):
        lenet(torch.randn(2, 1, 32, 32))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4),
       padding=st.integers(0, 3), dilation=st.integers(1, 2), ceil_mode=st.booleans(),
       kind=st.sampled_from(["conv", "max", "avg"]))
def test_layer_output_size_matches_pytorch(size, kernel, stride, padding, dilation, ceil_mode,
                                           kind):
    if kind == "conv":
        layer = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    elif kind == "max":
        if padding > kernel // 2:
            return
        layer = nn.MaxPool2d(kernel, stride=stride, padding=padding, dilation=dilation,
                             ceil_mode=ceil_mode)
    else:
        if padding > kernel // 2:
            return
        layer = nn.AvgPool2d(kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    predicted = layer_output_size(size, layer, 0)
    x = torch.zeros(1, 1, size, 1 + 2 * kernel * dilation)
    if predicted < 1:
        with pytest.raises(RuntimeError):
            layer(x)
    else:
        assert layer(x).shape[2] == predicted


# ---------------------------------------------------------------------------------------------
# LeNet-5, the Keras MNIST CNN, ResNet stems, GoogLeNet aux heads, airbench whitening
# ---------------------------------------------------------------------------------------------

def test_lenet5_classic_arithmetic():
    classic = create("lenet5", in_channels=1, input_size=32)
    mnist = create("lenet5", in_channels=1, input_size=28)
    assert classic.conv1.padding == (0, 0) and mnist.conv1.padding == (2, 2)
    for model in (classic, mnist):
        assert model.fc1.in_features == 16 * 5 * 5
        assert [m.out_features for m in (model.fc1, model.fc2, model.fc3)] == [120, 84, 10]
        assert isinstance(model.act1, nn.Tanh) and isinstance(model.pool1, nn.AvgPool2d)
    modern = create("lenet5", activation="relu", pool="max")
    assert isinstance(modern.act1, nn.ReLU) and isinstance(modern.pool2, nn.MaxPool2d)
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'tanh'\], got "
                                         r"'sigmoid'"):
        create("lenet5", activation="sigmoid")
    with pytest.raises(ValueError, match=r"padding must be an int >= 0 .* got -1"):
        create("lenet5", padding=-1)


def test_keras_mnist_layout():
    model = create("keras_mnist", in_channels=1)
    assert model.input_size == (28, 28)
    assert model.fc1.in_features == 64 * 12 * 12
    assert sum(p.numel() for p in model.parameters()) == 1_199_882  # as printed by Keras


def test_resnet_stem_follows_input_size():
    small = create("resnet18", input_size=32)
    big = create("resnet18", input_size=224)
    assert small.stem == "small" and small.conv1.kernel_size == (3, 3)
    assert isinstance(small.maxpool, nn.Identity)
    assert big.stem == "imagenet" and big.conv1.kernel_size == (7, 7)
    forced = create("resnet18", input_size=32, stem="imagenet")
    assert forced.conv1.stride == (2, 2)
    assert build_architecture(forced.architecture).stem == "imagenet"
    with torch.no_grad():
        assert small.eval().forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 4, 4)
    with pytest.raises(ValueError,
                       match=r"stem must be one of \('imagenet', 'small'\), got 'tiny'"):
        create("resnet18", stem="tiny")


# ---------------------------------------------------------------------------------------------
# Small-image layouts picked from input_size: NiN (CIFAR-10 layout) and DenseNet (3x3 stem)
# ---------------------------------------------------------------------------------------------

# the attribute and value that say a model runs its small-image layout
SMALL_LAYOUT = {"nin": ("layout", "small"), "densenet121": ("stem", "small"),
                "resnet18": ("stem", "small")}


@pytest.mark.parametrize("name", sorted(SMALL_LAYOUT))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["28x28x1", "32x32x3"])
def test_small_inputs_get_the_small_layout(name, shape, tmp_path):
    inspect_summary = pytest.importorskip("cnnkit.inspect.summary")
    channels, height, width = shape
    model = create(name, num_classes=10, in_channels=channels, input_size=(height, width))
    attribute, value = SMALL_LAYOUT[name]
    assert getattr(model, attribute) == value
    x = torch.randn(2, *shape)
    logits = model(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"{name}: no gradient reaches {missing}"

    model.eval()
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    rebuilt = build_architecture(json.loads(json.dumps(model.architecture))).eval()
    assert getattr(rebuilt, attribute) == value
    rebuilt.load_state_dict(load_file(str(path)), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)

    table = inspect_summary.summary(model)
    assert table.traced and table.macs > 0
    assert table.total_params == sum(p.numel() for p in model.parameters())
    assert table.rows[-1].output_shape == (10,)


def test_nin_small_layout_is_the_cifar10_network():
    model = create("nin", num_classes=10, in_channels=3, input_size=32)
    assert model.layout == "small" and model.feature_size == (8, 8)
    assert create("nin", input_size=28).feature_size == (7, 7)
    assert create("nin", input_size=(64, 64)).layout == "small"
    assert create("nin", input_size=(96, 67)).layout == "imagenet"
    with pytest.raises(ValueError, match=r"nin cannot take input_size=\(65, 64\).*smallest input "
                                         r"that works is 67x67.*pass layout='small'"):
        create("nin", input_size=(65, 64))
    # Lin et al. 2013, CIFAR-10: 5x5 192/160/96 -> 5x5 192/192/192 -> 3x3 192/192/10
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()
              if name.endswith("weight")}
    assert shapes == {
        "blocks.0.0.weight": (192, 3, 5, 5), "blocks.0.2.weight": (160, 192, 1, 1),
        "blocks.0.4.weight": (96, 160, 1, 1), "blocks.3.0.weight": (192, 96, 5, 5),
        "blocks.3.2.weight": (192, 192, 1, 1), "blocks.3.4.weight": (192, 192, 1, 1),
        "classifier.0.weight": (192, 192, 3, 3), "classifier.2.weight": (192, 192, 1, 1),
        "classifier.4.weight": (10, 192, 1, 1)}
    assert sum(p.numel() for p in model.parameters()) == 966_986
    pools = [m for m in model.blocks if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert [type(m) for m in pools] == [nn.MaxPool2d, nn.AvgPool2d]
    assert all(m.kernel_size == 3 and m.stride == 2 and m.ceil_mode for m in pools)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2
    model.eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        assert model.forward_features(x).shape == (2, 192, 8, 8)
        assert model.features(x).shape == (2, 192)
    # the imagenet layout is unchanged, and a forced layout survives the architecture round trip
    forced = create("nin", input_size=224, layout="small")
    assert build_architecture(forced.architecture).layout == "small"
    assert create("nin", input_size=224).blocks[0][0].weight.shape == (96, 3, 11, 11)
    with pytest.raises(ValueError,
                       match=r"layout must be one of \('imagenet', 'small'\), got 'cifar'"):
        create("nin", layout="cifar")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1\.5"):
        create("nin", dropout=1.5)


def test_densenet_stem_follows_input_size():
    small = create("densenet121", num_classes=1000, input_size=32)
    big = create("densenet121", num_classes=1000, input_size=224)
    assert small.stem == "small" and big.stem == "imagenet"
    assert small.trunk.conv0.kernel_size == (3, 3) and small.trunk.conv0.stride == (1, 1)
    assert "pool0" not in small.trunk._modules and "pool0" in big.trunk._modules
    assert small.feature_size == (4, 4) and create("densenet121", input_size=28).feature_size \
        == (3, 3)
    # the same torchvision names: only conv0.weight's shape changes
    shapes = torchvision_densenet121_shapes()
    ours = {name: tuple(t.shape) for name, t in small.state_dict().items()}
    assert ours == {**shapes, "features.conv0.weight": (64, 3, 3, 3)}
    forced = create("densenet121", input_size=32, stem="imagenet")
    assert forced.trunk.conv0.stride == (2, 2)
    assert build_architecture(forced.architecture).stem == "imagenet"
    with torch.no_grad():
        volume = small.eval().forward_features(torch.randn(1, 3, 32, 32))
    assert volume.shape == (1, 1024, 4, 4)
    with pytest.raises(ValueError,
                       match=r"stem must be one of \('imagenet', 'small'\), got 'tiny'"):
        create("densenet121", stem="tiny")


def test_googlenet_aux_classifiers():
    model = create("googlenet", num_classes=5, input_size=32, aux_logits=True)
    logits, aux2, aux1 = model.forward_with_aux(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux1.shape == aux2.shape == (2, 5)
    (logits.sum() + 0.3 * (aux1.sum() + aux2.sum())).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.reset_classifier(2)
    assert model.aux1.fc2.out_features == 2
    with pytest.raises(ValueError, match="aux_logits=True"):
        create("googlenet", input_size=32).forward_with_aux(torch.randn(1, 3, 32, 32))


def test_airbench_width_scales_the_blocks():
    model = create("airbench", width=0.5)
    widths = [model.block1.conv1.out_channels, model.block2.conv1.out_channels,
              model.block3.conv1.out_channels]
    assert widths == [32, 128, 128] and model.fc.in_features == 128
    assert model.whiten.out_channels == 24 and model.fc.bias is None
    with pytest.raises(ValueError, match=r"width must be a positive number .* got 0"):
        create("airbench", width=0)


def test_airbench_whitening_decorrelates_patches():
    model = create("airbench", in_channels=3)
    mixing = torch.randn(3, 3)
    images = torch.einsum("dc,nchw->ndhw", mixing, torch.randn(64, 3, 16, 16))
    images = images + torch.roll(images, 1, dims=3)  # correlate neighbouring pixels
    model.init_whitening(images, eps=0.0)
    with torch.no_grad():
        out = model.whiten(images)[:, :12]  # the +eigenvector half: (N, 12, 15, 15)
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)  # (N, 12, 15, 15) -> (N*15*15, 12)
    covariance = flat.T @ flat / flat.shape[0]
    torch.testing.assert_close(covariance, torch.eye(12), atol=1e-3, rtol=0)


# ---------------------------------------------------------------------------------------------
# torchvision naming: key lists written from torchvision's model definitions (not from ours)
# ---------------------------------------------------------------------------------------------

def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,),
            f"{prefix}.running_mean": (channels,), f"{prefix}.running_var": (channels,),
            f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet_shapes(blocks, bottleneck: bool, num_classes=1000):
    """torchvision.models.resnet: conv1/bn1, layerX.Y.{conv,bn}{1,2[,3]}, downsample.{0,1}, fc."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for index in range(count):
            prefix = f"layer{stage}.{index}"
            if bottleneck:
                convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, inplanes, 3), (planes, planes, 3)]
            for number, (out_c, in_c, k) in enumerate(convs, start=1):
                shapes[f"{prefix}.conv{number}.weight"] = (out_c, in_c, k, k)
                shapes.update(_bn(f"{prefix}.bn{number}", out_c))
            if index == 0 and (stage > 1 or inplanes != planes * expansion):
                shapes[f"{prefix}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                shapes.update(_bn(f"{prefix}.downsample.1", planes * expansion))
            inplanes = planes * expansion
    shapes.update({"fc.weight": (num_classes, 512 * expansion), "fc.bias": (num_classes,)})
    return shapes


ALEXNET_SHAPES = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}

VGG11_SHAPES = {
    "features.0.weight": (64, 3, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "features.16.weight": (512, 512, 3, 3), "features.16.bias": (512,),
    "features.18.weight": (512, 512, 3, 3), "features.18.bias": (512,),
    "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}


def torchvision_vgg_shapes(config, batch_norm: bool):
    """torchvision.models.vgg.make_layers: conv[, bn], relu per number, one max pool per "M"."""
    shapes, index, channels = {}, 0, 3
    for item in config:
        if item == "M":
            index += 1
            continue
        shapes.update({f"features.{index}.weight": (item, channels, 3, 3),
                       f"features.{index}.bias": (item,)})
        if batch_norm:
            shapes.update(_bn(f"features.{index + 1}", item))
        index += 3 if batch_norm else 2
        channels = item
    for index, (out_f, in_f) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (1000, 4096))):
        shapes.update({f"classifier.{index}.weight": (out_f, in_f),
                       f"classifier.{index}.bias": (out_f,)})
    return shapes


VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")
VGG11_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def torchvision_densenet121_shapes():
    """torchvision.models.densenet (current names: norm1/conv1/norm2/conv2 in each denselayer)."""
    shapes = {"features.conv0.weight": (64, 3, 7, 7), **_bn("features.norm0", 64)}
    channels = 64
    for block, layers in enumerate((6, 12, 24, 16), start=1):
        for layer in range(1, layers + 1):
            prefix = f"features.denseblock{block}.denselayer{layer}"
            shapes.update(_bn(f"{prefix}.norm1", channels))
            shapes[f"{prefix}.conv1.weight"] = (128, channels, 1, 1)
            shapes.update(_bn(f"{prefix}.norm2", 128))
            shapes[f"{prefix}.conv2.weight"] = (32, 128, 3, 3)
            channels += 32
        if block < 4:
            shapes.update(_bn(f"features.transition{block}.norm", channels))
            shapes[f"features.transition{block}.conv.weight"] = (channels // 2, channels, 1, 1)
            channels //= 2
    shapes.update(_bn("features.norm5", channels))
    shapes.update({"classifier.weight": (1000, 1024), "classifier.bias": (1000,)})
    return shapes


def torchvision_googlenet_shapes(aux_logits: bool):
    """torchvision.models.googlenet: BasicConv2d = {conv (no bias), bn}; branch2/3/4 Sequentials."""
    def basic(prefix, in_c, out_c, k):
        return {f"{prefix}.conv.weight": (out_c, in_c, k, k), **_bn(f"{prefix}.bn", out_c)}

    shapes = {**basic("conv1", 3, 64, 7), **basic("conv2", 64, 64, 1),
              **basic("conv3", 64, 192, 3)}
    inceptions = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
                  "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
                  "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
                  "4e": (528, 256, 160, 320, 32, 128, 128),
                  "5a": (832, 256, 160, 320, 32, 128, 128),
                  "5b": (832, 384, 192, 384, 48, 128, 128)}
    for tag, (in_c, c1, c3r, c3, c5r, c5, pool) in inceptions.items():
        p = f"inception{tag}"
        shapes.update(basic(f"{p}.branch1", in_c, c1, 1))
        shapes.update(basic(f"{p}.branch2.0", in_c, c3r, 1))
        shapes.update(basic(f"{p}.branch2.1", c3r, c3, 3))
        shapes.update(basic(f"{p}.branch3.0", in_c, c5r, 1))
        shapes.update(basic(f"{p}.branch3.1", c5r, c5, 3))
        shapes.update(basic(f"{p}.branch4.1", in_c, pool, 1))
    if aux_logits:
        for name, in_c in (("aux1", 512), ("aux2", 528)):
            shapes.update({**basic(f"{name}.conv", in_c, 128, 1),
                           f"{name}.fc1.weight": (1024, 2048), f"{name}.fc1.bias": (1024,),
                           f"{name}.fc2.weight": (1000, 1024), f"{name}.fc2.bias": (1000,)})
    shapes.update({"fc.weight": (1000, 1024), "fc.bias": (1000,)})
    return shapes


TORCHVISION = {
    "resnet18": (lambda: torchvision_resnet_shapes((2, 2, 2, 2), False), {}, 11_689_512),
    "resnet34": (lambda: torchvision_resnet_shapes((3, 4, 6, 3), False), {}, 21_797_672),
    "resnet50": (lambda: torchvision_resnet_shapes((3, 4, 6, 3), True), {}, 25_557_032),
    "alexnet": (lambda: ALEXNET_SHAPES, {}, 61_100_840),
    "vgg11": (lambda: VGG11_SHAPES, {}, 132_863_336),
    "vgg16": (lambda: torchvision_vgg_shapes(VGG16_CONFIG, False), {}, 138_357_544),
    "vgg11_bn": (lambda: torchvision_vgg_shapes(VGG11_CONFIG, True), {}, 132_868_840),
    "vgg16_bn": (lambda: torchvision_vgg_shapes(VGG16_CONFIG, True), {}, 138_365_992),
    "densenet121": (torchvision_densenet121_shapes, {}, 7_978_856),
    "googlenet": (lambda: torchvision_googlenet_shapes(False), {}, 6_624_904),
    "googlenet+aux": (lambda: torchvision_googlenet_shapes(True), {"aux_logits": True},
                      13_004_888),
}


@pytest.mark.parametrize("key", sorted(TORCHVISION))
def test_torchvision_state_dict_loads_strictly(key):
    shapes_fn, kwargs, documented_params = TORCHVISION[key]
    shapes = shapes_fn()
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = create(key.split("+")[0], num_classes=1000, input_size=224, **kwargs)
        state = {name: torch.empty(shape) for name, shape in shapes.items()}
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert ours == shapes
    model.load_state_dict(state, strict=True)
    # parameter counts documented on torchvision's model pages
    assert sum(p.numel() for p in model.parameters()) == documented_params


def test_legacy_densenet_keys_are_remapped():
    # torchvision's densenet121 .pth file predates num_batches_tracked and says "norm.1", not
    # "norm1"
    current = {key: shape for key, shape in torchvision_densenet121_shapes().items()
               if not key.endswith("num_batches_tracked")}
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key): shape
              for key, shape in current.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert remap_legacy_keys(legacy) == current


def random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Random tensors for a state dict: small weights, positive running variances."""
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape) + 0.5
        else:
            state[name] = 0.1 * torch.randn(shape)
    return state


def test_torchvision_resnet18_weights_give_the_same_function():
    state = random_state(torchvision_resnet_shapes((2, 2, 2, 2), False))
    model = create("resnet18", num_classes=1000, input_size=64, stem="imagenet")
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.randn(1, 3, 64, 64)

    # the same network written out with torch.nn.functional and the loaded tensors
    def bn(t, p):
        return nn.functional.batch_norm(t, state[f"{p}.running_mean"], state[f"{p}.running_var"],
                                        state[f"{p}.weight"], state[f"{p}.bias"], False, 0.0, 1e-5)
    h = nn.functional.relu(bn(nn.functional.conv2d(x, state["conv1.weight"], stride=2, padding=3),
                              "bn1"))
    h = nn.functional.max_pool2d(h, 3, 2, 1)
    for stage in range(1, 5):
        for index in range(2):
            p = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            out = nn.functional.relu(bn(nn.functional.conv2d(h, state[f"{p}.conv1.weight"],
                                                             stride=stride, padding=1), f"{p}.bn1"))
            out = bn(nn.functional.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            shortcut = h
            if f"{p}.downsample.0.weight" in state:
                shortcut = bn(nn.functional.conv2d(h, state[f"{p}.downsample.0.weight"],
                                                   stride=stride), f"{p}.downsample.1")
            h = nn.functional.relu(out + shortcut)
    pooled = h.mean(dim=(2, 3))
    expected = nn.functional.linear(pooled, state["fc.weight"], state["fc.bias"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, size, key, value", [("resnet18", 32, "stem", "small"),
                                                     ("densenet121", 32, "stem", "small"),
                                                     ("nin", 32, "layout", "small"),
                                                     ("nin", 96, "layout", "imagenet")])
def test_architecture_records_the_layout_chosen_from_the_input_size(name, size, key, value):
    # a saved run must rebuild the same layers even if the size rule changes later
    arch = create(name, num_classes=3, input_size=size).architecture
    assert arch["kwargs"][key] == value
    assert getattr(build_architecture(arch), key) == value
