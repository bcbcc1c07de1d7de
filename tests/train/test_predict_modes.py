"""predict_proba evaluates in eval mode and leaves the model's mode as it found it."""
from __future__ import annotations

import torch
from torch import nn

from cnnkit.run.outputs import predict_proba


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.5),
                         nn.Linear(8, 3))


def test_a_training_model_is_evaluated_in_eval_mode_and_put_back():
    model = _model()
    x = torch.randn(6, 1, 4, 4)
    probs = predict_proba(model, [x])
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        expected = model(x).softmax(1)
    torch.testing.assert_close(probs, expected)  # dropout off, running BN statistics


def test_an_eval_model_stays_in_eval_mode_untouched():
    model = _model().eval()
    x = torch.randn(6, 1, 4, 4)
    first = predict_proba(model, [x])
    assert not any(m.training for m in model.modules())
    assert torch.equal(first, predict_proba(model, [x]))


def test_a_module_left_in_training_mode_inside_an_eval_model_is_switched_too():
    model = _model().eval()
    model[3].train()  # one dropout in training mode: predictions must still be deterministic
    x = torch.randn(6, 1, 4, 4)
    a, b = predict_proba(model, [x]), predict_proba(model, [x])
    assert torch.equal(a, b)
