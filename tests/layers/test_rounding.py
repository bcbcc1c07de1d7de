"""rounding="warn" (default) floors with one RoundingWarning per layer; "floor" is silent."""
import warnings

import pytest
import torch

from cnnkit.errors import RoundingWarning
from cnnkit.inspect.summary import summary
from cnnkit.keras import layers as keras_layers
from cnnkit.layers import Conv, MaxPool
from cnnkit.models import Sequential

ISSUE_SPEC = "conv(16,3) relu maxpool(2) conv(32,3) relu maxpool(2) fc(2)"


def test_default_floors_the_issue_model_with_one_warning_naming_the_numbers():
    with pytest.warns(RoundingWarning) as record:
        model = Sequential.from_spec(ISSUE_SPEC, input_shape="64x64x3")
        model(torch.zeros(2, 3, 64, 64))
    assert len(record) == 1
    assert str(record[0].message) == (
        "MaxPool 'maxpool2': output size O = (W − K + 2P)/S + 1 = (29 − 2 + 2·0)/2 + 1 = 14.50 "
        "is rounded down to 14 (as PyTorch and Keras do), so the last 1 row and the last 1 column "
        "of the 29x29 input are not used. Pass rounding='floor' to accept this silently or "
        "rounding='strict' to refuse it.")
    assert model.shapes()[5] == ("maxpool2", (32, 14, 14))
    assert model[5].rounding_note == "floor: drops 1 row, 1 col"


def test_floor_is_silent_and_strict_refuses():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = Sequential.from_spec(ISSUE_SPEC, input_shape="64x64x3", rounding="floor")
    assert model.output_shape == (2,)
    with pytest.raises(ValueError, match=r"\(29 − 2 \+ 2·0\)/2 \+ 1 = 14\.50 is not an integer"):
        Sequential.from_spec(ISSUE_SPEC, input_shape="64x64x3", rounding="strict")


def test_warning_names_only_the_axis_that_drops_pixels():
    conv = Conv(4, 3, stride=2, in_channels=1, name="c")
    with pytest.warns(RoundingWarning, match=r"output height .* = 3\.50 is rounded down to 3 .* "
                                             r"the last 1 row of the 8x9 input"):
        assert conv.compute_output_shape((1, 8, 9)) == (4, 3, 4)
    assert conv.rounding_note == "floor: drops 1 row"


def test_same_input_warns_once_and_exact_fit_has_no_note():
    pool = MaxPool(2, name="p")
    with pytest.warns(RoundingWarning) as record:
        pool.compute_output_shape((1, 5, 5))
        pool.compute_output_shape((1, 5, 5))
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pool.compute_output_shape((1, 4, 4)) == (1, 2, 2)
    assert pool.rounding_note is None


def test_summary_marks_the_rounded_layer():
    model = Sequential.from_spec(ISSUE_SPEC, input_shape="64x64x3", rounding="floor")
    result = summary(model)
    assert [row.note for row in result.rows][5] == "floor: drops 1 row, 1 col"
    assert sum(row.note is not None for row in result.rows) == 1
    text = str(result)
    assert "14x14x32 !" in text
    assert "! 5: floor: drops 1 row, 1 col" in text


def test_keras_layers_warn_and_do_not_print_rounding_in_the_summary():
    model = Sequential()
    model.add(keras_layers.Conv2D(4, (3, 3), input_shape=[7, 7, 1]))
    with pytest.warns(RoundingWarning, match=r"MaxPool2D .*\(5 − 3 \+ 2·0\)/3 \+ 1 = 1\.67 is "
                                             r"rounded down to 1 .* last 2 rows and the last 2 "
                                             r"columns"):
        model.add(keras_layers.MaxPool2D((3, 3), strides=3))
    assert model.output_shape == (4, 1, 1)
    assert "rounding" not in model.to_spec()
    assert "rounding" not in str(summary(model))
