import pytest
import torch
from train_helpers import make_blobs, small_cnn

from cnnkit.train.batches import TensorBatches
from cnnkit.train.lr_finder import find_lr


def test_range_test_restores_weights_and_suggests_a_rate_inside_the_range():
    x, y = make_blobs(256)
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, TensorBatches(x, y, batch_size=32, shuffle=True), min_lr=1e-5,
                     max_lr=10.0, num_steps=40)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert 1e-5 <= result.suggestion <= 10.0
    assert result.lrs == sorted(result.lrs) and len(result.lrs) == len(result.losses)
    # the rates grow geometrically: lr_i = min_lr * (max_lr/min_lr)^(i/(n-1))
    assert result.lrs[1] / result.lrs[0] == pytest.approx((10.0 / 1e-5) ** (1 / 39))
    assert min(result.losses) < result.losses[0]  # the loss fell somewhere in the range
    assert "suggested lr" in result.to_text()


def test_bad_ranges():
    with pytest.raises(ValueError, match="need 0 < min_lr < max_lr"):
        find_lr(small_cnn(), [], min_lr=1.0, max_lr=0.1)
    with pytest.raises(ValueError, match="num_steps must be an int >= 5, got 2"):
        find_lr(small_cnn(), [], num_steps=2)
    with pytest.raises(ValueError, match="the loader gave no batches"):
        find_lr(small_cnn(), [], num_steps=5)
