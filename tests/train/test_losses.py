import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.train.losses import (BinaryCrossEntropyLoss, CrossEntropyLoss, MeanSquaredErrorLoss,
                                 SquaredErrorLoss,
                                 get_loss)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 4, generator=g, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2, 3])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]])
def test_cross_entropy_matches_torch_for_indices_and_one_hot(batch, smoothing, weights):
    logits, y = batch
    w = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    expected = F.cross_entropy(logits, y, weight=w, label_smoothing=smoothing)
    loss = CrossEntropyLoss(smoothing, weights)
    assert torch.allclose(loss(logits, y), expected.float(), atol=1e-6)
    one_hot = F.one_hot(y, 4).double()
    assert torch.allclose(loss(logits, one_hot), expected.float(), atol=1e-6)


def test_cross_entropy_on_softmax_outputs_equals_it_on_logits(batch):
    logits, y = batch
    on_logits = CrossEntropyLoss()(logits, y)
    on_probs = CrossEntropyLoss(from_probs=True)(logits.softmax(1), y)
    assert torch.allclose(on_logits, on_probs, atol=1e-6)


def test_cross_entropy_gradient_matches_torch(batch):
    logits, y = batch
    a = logits.clone().float().requires_grad_()
    b = logits.clone().float().requires_grad_()
    CrossEntropyLoss(0.1)(a, F.one_hot(y, 4).float()).backward()
    F.cross_entropy(b, y, label_smoothing=0.1).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_squared_error_is_half_the_sum_of_squares_on_softmax(batch):
    logits, y = batch
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    t = np.eye(4)[y.numpy()]
    expected = np.mean([0.5 * sum((t[i, k] - p[i, k]) ** 2 for k in range(4)) for i in range(6)])
    assert SquaredErrorLoss()(logits, y).item() == pytest.approx(expected, rel=1e-6)
    assert SquaredErrorLoss(from_probs=True)(torch.tensor(p), y).item() == pytest.approx(
        expected, rel=1e-6)


def test_binary_cross_entropy_matches_torch(batch):
    logits, y = batch
    expected = F.binary_cross_entropy_with_logits(logits, F.one_hot(y, 4).double())
    assert BinaryCrossEntropyLoss()(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    single = torch.tensor([[0.3], [-1.2]])
    assert BinaryCrossEntropyLoss()(single, torch.tensor([1, 0])).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(single, torch.tensor([[1.0], [0.0]])).item())


def test_get_loss_resolves_keras_names_and_passes_callables():
    assert isinstance(get_loss("categorical_crossentropy"), CrossEntropyLoss)
    assert isinstance(get_loss("sparse_categorical_crossentropy"), CrossEntropyLoss)
    assert isinstance(get_loss("squared_error"), SquaredErrorLoss)
    assert isinstance(get_loss("mse"), MeanSquaredErrorLoss)
    assert isinstance(get_loss("mean_squared_error"), MeanSquaredErrorLoss)
    assert isinstance(get_loss("binary_crossentropy"), BinaryCrossEntropyLoss)
    torch_loss = nn.CrossEntropyLoss()
    assert get_loss(torch_loss) is torch_loss


def test_get_loss_errors():
    with pytest.raises(ValueError, match=r"unknown loss 'cross_entropyy'; did you mean "
                                         r"'cross_entropy'\?"):
        get_loss("cross_entropyy")
    with pytest.raises(ValueError, match="apply to cross-entropy only"):
        get_loss("mse", label_smoothing=0.1)
    with pytest.raises(TypeError, match="loss must be a name"):
        get_loss(3)
    with pytest.raises(ValueError, match="class_weights has 2 values but the model outputs 4"):
        get_loss("cross_entropy", class_weights=[1.0, 2.0])(torch.zeros(2, 4),
                                                            torch.tensor([0, 1]))


def test_keras_mse_is_the_mean_over_classes_two_over_k_of_the_squared_error():
    """Keras' mse = mean_k (t_k - y_k)^2; the tutorials' E = 1/2 sum_k: mse = (2/K) E."""
    torch.manual_seed(0)
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    p = torch.softmax(logits, dim=1)
    t = F.one_hot(target, 5).float()
    mse = MeanSquaredErrorLoss()(logits, target)
    assert mse.item() == pytest.approx(((t - p) ** 2).mean().item(), rel=1e-6)
    assert mse.item() == pytest.approx(2 / 5 * SquaredErrorLoss()(logits, target).item(), rel=1e-6)


def test_the_same_loss_names_in_python_config_and_cli():
    from cnnkit.cli import build_parser
    from cnnkit.train import TrainConfig

    assert TrainConfig(loss="mean_squared_error").loss == "mse"
    assert TrainConfig(loss="categorical_crossentropy").loss == "cross_entropy"
    for name, stored in (("mse", "mse"), ("squared_error", "squared_error"),
                         ("sparse_categorical_crossentropy", "cross_entropy")):
        args = build_parser().parse_args(["train", "--loss", name])
        assert TrainConfig(loss=args.loss).loss == stored
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="hinge")
