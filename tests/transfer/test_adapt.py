"""Input-channel adaptation: the documented rule, checked on real responses."""
import pytest
import torch
import torch.nn.functional as F

from cnnkit import Sequential
from cnnkit.models import build_architecture, create
from cnnkit.transfer_learning import adapt_conv_weight, adapt_input_channels


def test_rgb_to_gray_gives_the_response_to_the_replicated_image():
    model = create("resnet18", num_classes=5, in_channels=3, input_size=32).eval()
    gray = torch.rand(4, 1, 32, 32, dtype=torch.float64)
    model = model.double()
    with torch.no_grad():
        expected = model(gray.expand(-1, 3, -1, -1))
        adapt_input_channels(model, 1)
        got = model(gray)
    torch.testing.assert_close(got, expected)
    assert model.in_channels == 1 and model.architecture["kwargs"]["in_channels"] == 1
    build_architecture(model.architecture).double().load_state_dict(model.state_dict())


def test_gray_to_rgb_applies_the_filter_to_the_channel_mean():
    weight = torch.randn(6, 1, 3, 3, dtype=torch.float64)
    rgb = torch.rand(2, 3, 9, 9, dtype=torch.float64)
    adapted = adapt_conv_weight(weight, 3)
    torch.testing.assert_close(F.conv2d(rgb, adapted),
                               F.conv2d(rgb.mean(dim=1, keepdim=True), weight))


@pytest.mark.parametrize("old, new", [(2, 5), (3, 2), (4, 3), (3, 1), (1, 3), (2, 6)])
def test_general_rule_keeps_the_response_to_a_constant_image(old, new):
    weight = torch.randn(4, old, 3, 3, dtype=torch.float64)
    adapted = adapt_conv_weight(weight, new)
    assert adapted.shape == (4, new, 3, 3)
    torch.testing.assert_close(F.conv2d(torch.ones(1, new, 3, 3, dtype=torch.float64), adapted),
                               F.conv2d(torch.ones(1, old, 3, 3, dtype=torch.float64), weight))


def test_sequential_input_shape_follows():
    net = Sequential.from_spec("conv(4,3) relu flatten fc(10)", "8x8x3")
    adapt_input_channels(net, 1)
    assert net.input_shape == (1, 8, 8)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    Sequential.from_architecture(net.architecture).load_state_dict(net.state_dict())


def test_bad_channels_are_rejected():
    with pytest.raises((TypeError, ValueError), match="in_channels"):
        adapt_conv_weight(torch.zeros(1, 3, 1, 1), 0)
