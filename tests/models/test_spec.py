"""Architecture strings: parsing, defaults, canonical round trips and pinned error messages."""
from __future__ import annotations

import pytest
import torch

from cnnkit.layers import Conv, Dense, Flatten, LeakyReLU, MaxPool, SumPool
from cnnkit.models.sequential import Sequential
from cnnkit.models.spec import SpecError, canonical_spec, parse_spec

LENET = "conv(6,5) relu maxpool(2) conv(16,5) relu maxpool(2) fc(120) relu fc(84) relu fc(10)"


def test_lenet_spec_builds_with_inferred_sizes():
    model = Sequential.from_spec(LENET, "32x32x3")
    assert model.to_spec() == LENET.replace("maxpool(2) fc(120)", "maxpool(2) flatten fc(120)")
    assert dict(model.shapes())["flatten1"] == (400,)
    assert model[7].weight.shape == (120, 400)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("spec,canonical", [
    (LENET, LENET.replace("maxpool(2) fc(120)", "maxpool(2) flatten fc(120)")),
    ("CONV(64, 3, stride=2, padding=SAME) ReLU", "conv(64,3,stride=2,padding=same) relu"),
    ("conv(16,1) gap fc(10)", "conv(16,1) gap fc(10)"),
    ("conv(8,3,padding=1), leakyrelu(0.1), maxpool(3,2) avgpool(2) sumpool(2) l2pool(2)",
     "conv(8,3,padding=1) leakyrelu(0.1) maxpool(3,2) avgpool(2) sumpool(2) l2pool(2)"),
    ("conv(8,(3,5),stride=(1,2),dilation=2,bias=false,activation=leaky_relu,rounding=floor)",
     "conv(8,(3,5),stride=(1,2),dilation=2,bias=false,activation=leakyrelu,rounding=floor)"),
    ("conv(4,3,activation=leakyrelu(0.2)) tanh sigmoid gelu globalmaxpool dense(5) dropout(0.25)"
     " batchnorm(momentum=0.01) softmax",
     "conv(4,3,activation=leakyrelu(0.2)) tanh sigmoid gelu globalmaxpool fc(5) dropout(0.25) "
     "bn(momentum=0.01) softmax"),
    ("Input -> Conv -> ReLU -> Pool -> Fully Connected",
     "conv(32,3,padding=same) relu maxpool(2) flatten fc(10)"),
    ("input→conv(64,5)→max pool→FC→relu→fully-connected→softmax",
     "conv(64,5,padding=same) maxpool(2) flatten fc(128) relu fc(10) softmax"),
    ("Conv -> Batch Norm -> Avg Pool(3, 2) -> Dropout -> FC",
     "conv(32,3,padding=same) bn avgpool(3,2) dropout(0.5) flatten fc(10)"),
])
def test_canonical_form_is_a_fixed_point(spec, canonical):
    assert canonical_spec(spec) == canonical
    assert canonical_spec(canonical) == canonical


def test_num_classes_sets_the_last_arrow_fc():
    assert canonical_spec("Conv -> FC", num_classes=3) == "conv(32,3,padding=same) flatten fc(3)"


def test_flatten_inserted_only_after_an_image_volume():
    assert canonical_spec("fc(10)") == "fc(10)"
    assert canonical_spec("fc(10)", image_input=True) == "flatten fc(10)"
    assert canonical_spec("gap fc(10)", image_input=True) == "gap fc(10)"
    model = Sequential.from_spec("fc(8) relu fc(2)", 20)
    assert model.to_spec() == "fc(8) relu fc(2)"


def test_parsed_layers_have_positions_and_types():
    parsed = parse_spec("conv(6,5)  maxpool(2) fc(3)")
    assert [(type(p.layer), p.text, p.position) for p in parsed] == [
        (Conv, "conv(6,5)", 0), (MaxPool, "maxpool(2)", 11), (Flatten, "fc(3)", 22),
        (Dense, "fc(3)", 22)]
    layer = parse_spec("sumpool(3,1,padding=1)")[0].layer
    assert isinstance(layer, SumPool) and layer.stride == (1, 1) and layer.padding == (1, 1)
    assert isinstance(parse_spec("conv(2,3,activation=leakyrelu(0.3))")[0].layer.activation,
                      LeakyReLU)


def test_rebuilt_model_from_spec_equals_the_original():
    model = Sequential.from_spec("conv(4,3,padding=same) bn relu l2pool(2) conv(8,3,stride=2) "
                                 "gelu gap dropout fc(3,activation=softmax)", "14x14x2").eval()
    rebuilt = Sequential.from_spec(model.to_spec(), "14x14x2").eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 2, 14, 14)
    torch.testing.assert_close(rebuilt(x), model(x))


def _message(spec, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        Sequential.from_spec(spec, "28x28x1", **kwargs)
    return str(info.value)


def test_unknown_layer_points_at_the_token_with_a_suggestion():
    assert _message("conv(6,5) cnv(16,5)").startswith(
        "unknown layer 'cnv' at position 10 (did you mean 'conv'?)")
    assert _message("conv(6,5) cnv(16,5)").endswith(
        "\n  conv(6,5) cnv(16,5)\n            ^^^")


@pytest.mark.parametrize("spec,message", [
    ("conv(6,5,strid=2)", r"unknown argument 'strid' in 'conv\(6,5,strid=2\)' at position 9 "
                          r"\(did you mean 'stride'\?\)"),
    ("conv relu", r"'conv' at position 0 needs filters, e.g. conv\(32,3\)"),
    ("relu conv(6,5", r"unclosed '\(' in 'conv' at position 5"),
    ("conv(6,5,1,0,1)", r"too many arguments in 'conv\(6,5,1,0,1\)' at position 0: conv takes 4 "
                        r"positional \(filters, kernel_size, stride, padding\), got 5"),
    ("maxpool(2) fc(x)", r"bad arguments in 'fc\(x\)' at position 11: units must be a positive "
                         r"int, got 'x'"),
    ("conv(6,5,padding=sme)", r"bad arguments in .* padding must be .*got 'sme'"),
    ("conv(6,stride=2,3)", r"positional argument after key=value in 'conv' at position 16"),
    ("conv(6,5,stride=1,stride=2)", r"argument 'stride' given twice"),
    ("conv(6,5) ; relu", r"unexpected ';' at position 10"),
    ("Input -> Conv -> -> FC", r"empty stage between arrows at position 17"),
    ("Conv -> Input", r"'Input' at position 8 must be the first stage"),
    ("conv(4,3,activation=maxpool(2))", r"activation='maxpool' at position 20 is not an "
                                        r"activation"),
    ("   ", r"empty architecture string"),
])
def test_error_messages_are_pinned(spec, message):
    with pytest.raises(SpecError, match=message):
        Sequential.from_spec(spec, "28x28x1")


def test_shape_errors_point_at_the_layer_token():
    text = _message("conv(8,3) conv(8,3,stride=3)", rounding="strict")
    assert text.startswith("layer 'conv(8,3,stride=3)' at position 10 does not fit: Conv 'conv2': "
                           "output size O = (W − K + 2P)/S + 1 = (26 − 3 + 2·0)/3 + 1 = 8.67")
    assert text.endswith("\n            ^^^^^^^^^^^^^^^^^^")


def test_spec_errors_are_value_errors():
    assert issubclass(SpecError, ValueError)
    with pytest.raises(TypeError, match=r"spec must be a string"):
        parse_spec(None)


# ---- upsampling tokens and size limits (issues 15 and 18) ----

def test_upsample_and_deconv_tokens_round_trip():
    spec = "conv(8,3,padding=same) relu maxpool(2) deconv(8,2,2) upsample(2,bilinear) conv(11,1)"
    assert canonical_spec(spec, image_input=True) == (
        "conv(8,3,padding=same) relu maxpool(2) convtranspose(8,2,2) upsample(2,bilinear) "
        "conv(11,1)")
    model = Sequential.from_spec(spec, input_shape=(16, 16, 1))
    assert tuple(model(torch.zeros(2, 1, 16, 16)).shape) == (2, 11, 32, 32)


def test_summary_shows_upsampling_fields():
    model = Sequential.from_spec("conv(4,3) maxpool(2) convtranspose(4,2,2) upsample(2)",
                                 input_shape=(10, 10, 1))
    from cnnkit.inspect.summary import summary

    text = str(summary(model, "10x10x1"))
    # conv 3x3 -> 8x8 (RF 3), pool -> 4x4 (RF 4, jump 2), deconv k=2 s=2 -> 8x8 (1 tap: RF 4,
    # jump 1), nearest x2 -> 16x16 (RF 4, jump 0.5)
    lines = [line.split() for line in text.splitlines()]
    deconv = next(parts for parts in lines if len(parts) > 2 and parts[1].startswith("ConvTranspose"))
    up = next(parts for parts in lines if len(parts) > 2 and parts[1].startswith("Upsample"))
    assert deconv[2] == "8x8x4" and deconv[-2:] == ["4x4", "1x1"]
    assert up[2] == "16x16x4" and up[-2:] == ["4x4", "0.5x0.5"]


def test_deeply_nested_spec_is_a_parse_error():
    with pytest.raises(SpecError, match=r"parentheses nested too deeply at position 16 "
                                        r"\(more than 16 levels\)"):
        parse_spec("(" * 5000)
    with pytest.raises(SpecError, match=r"nested too deeply"):
        parse_spec("conv(" + "(" * 20 + "3" + ")" * 20 + ")")


def test_overlong_spec_is_a_parse_error():
    with pytest.raises(SpecError, match=r"architecture string too long \(20000 characters, "
                                        r"at most 10000\)"):
        parse_spec("relu " * 4000)
