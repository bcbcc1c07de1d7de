"""Head replacement for every registry model and for Sequential/plain modules."""
import pytest
import torch
from torch import nn

from cnnkit import Sequential
from cnnkit.models import create, names
from cnnkit.transfer_learning import head_path, layer_groups, replace_head, transfer

# The smallest input each family accepts, to keep the loop fast.
SMALL = {"alexnet": 64, "zfnet": 64, "nin": 67, "googlenet": 32, "densenet121": 32,
         "lenet5": 32, "keras_mnist": 28, "airbench": 32}


@pytest.mark.parametrize("name", names())
def test_head_replacement_for_every_registry_model(name):
    size = SMALL.get(name, 32)
    model = create(name, num_classes=10, in_channels=3, input_size=size)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if not k.startswith(head_path(model) + ".")}
    transfer(model, num_classes=4)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 4)
    assert model.num_classes == 4 and model.architecture["kwargs"]["num_classes"] == 4
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the rest is untouched
    assert layer_groups(model)[-1].modules == (model.classifier_path,)


def test_sequential_head_is_the_last_dense_and_the_spec_follows():
    net = Sequential.from_spec("conv(4,3) relu flatten fc(16) relu fc(10) softmax", "8x8x1")
    first = net[0].weight.clone()
    head = replace_head(net, 3)
    assert head.units == 3 and net.output_shape == (3,)
    assert net.to_spec().endswith("fc(3) softmax")
    assert net(torch.randn(5, 1, 8, 8)).shape == (5, 3)
    assert torch.equal(net[0].weight, first)
    rebuilt = Sequential.from_architecture(net.architecture)
    rebuilt.load_state_dict(net.state_dict())  # the run folder can rebuild it


def test_plain_module_uses_its_last_linear():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 8), nn.ReLU(),
                        nn.Linear(8, 10))
    assert head_path(net) == "4"
    replace_head(net, 2)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 2)


def test_module_without_linear_is_a_clear_error():
    with pytest.raises(ValueError, match="has no nn.Linear layer"):
        replace_head(nn.Sequential(nn.Conv2d(1, 2, 3)), 2)


def test_bad_num_classes_names_the_argument():
    with pytest.raises((TypeError, ValueError), match="num_classes"):
        replace_head(create("lenet5", num_classes=10, in_channels=1, input_size=32), 0)
