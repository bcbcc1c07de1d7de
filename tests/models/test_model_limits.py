"""Models too large for memory are refused before allocation; over-deep specs are parse errors."""
import pytest

from cnnkit.errors import CnnkitError, ModelTooLargeError
from cnnkit.layers import Conv, Dense, Flatten
from cnnkit.models import Sequential
from cnnkit.models.limits import available_memory, check_memory
from cnnkit.models.spec import MAX_NESTING_DEPTH, MAX_SPEC_LENGTH, SpecError


def test_huge_dense_layer_is_refused_with_the_figures():
    with pytest.raises(CnnkitError, match=r"3,457,000,000,000,156 parameters \(12,878,328\.6 GiB "
                                          r"float32\).*GiB of memory is available; use fewer"):
        Sequential.from_spec("conv(6,5) relu fc(1000000000000)", input_shape="28x28x1")


def test_huge_activations_are_refused_before_allocation():
    with pytest.raises(ModelTooLargeError, match=r"1,000,000,000 parameters \(3\.7 GiB float32\) "
                                                 r"and 251\.8 GiB of activations for one image"):
        Sequential([Conv(100_000_000, 3)], "28x28x1")


def test_add_checks_too_and_leaves_the_model_unchanged():
    model = Sequential([Conv(6, 5), Flatten()], "28x28x1")
    with pytest.raises(ModelTooLargeError):
        model.add(Dense(10 ** 12))
    assert len(model) == 2 and model.output_shape == (3456,)


def test_check_memory_threshold():
    available = available_memory()
    assert available > 0
    check_memory(1000, 1000, where="x")
    with pytest.raises(ModelTooLargeError, match=r"^y is too large"):
        check_memory(available // 4 + 1, 0, where="y")


def test_deep_nesting_and_long_specs_are_parse_errors():
    deep = "seq(" * 3000 + "relu" + ")" * 3000
    with pytest.raises(SpecError, match=rf"at most {MAX_SPEC_LENGTH}"):
        Sequential.from_spec(deep, input_shape="28x28x1")
    nested = "(" * (MAX_NESTING_DEPTH + 1) + ")" * (MAX_NESTING_DEPTH + 1)
    with pytest.raises(SpecError, match=rf"more than {MAX_NESTING_DEPTH} levels"):
        Sequential.from_spec("conv" + nested, input_shape="28x28x1")
