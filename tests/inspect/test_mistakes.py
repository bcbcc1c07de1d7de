"""Confusion matrix vs scikit-learn, per-class accuracy, most confident mistakes."""
from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from cnnkit.inspect.mistakes import (confusion_matrix, most_confident_mistakes, normalize_confusion,
                                     per_class_accuracy)


def test_confusion_matrix_matches_sklearn():
    generator = torch.Generator().manual_seed(3)
    y_true = torch.randint(0, 5, (200,), generator=generator)
    y_pred = torch.where(torch.rand(200, generator=generator) < 0.6, y_true,
                         torch.randint(0, 5, (200,), generator=generator))
    cm = confusion_matrix(y_true, y_pred, 5)
    assert cm.tolist() == sk_confusion_matrix(y_true.numpy(), y_pred.numpy(), labels=range(5)).tolist()
    assert cm.dtype == torch.int64 and cm.sum() == 200


def test_absent_classes_keep_their_rows_and_columns():
    cm = confusion_matrix([0, 0, 2], [0, 2, 2], 4)
    assert cm.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    normalised = normalize_confusion(cm)
    assert normalised[0].tolist() == [0.5, 0, 0.5, 0] and normalised[1].sum() == 0
    accuracy = per_class_accuracy(cm)
    assert accuracy[0] == 0.5 and accuracy[2] == 1.0 and math.isnan(accuracy[1])


def test_per_class_accuracy_is_recall():
    cm = torch.tensor([[8, 2, 0], [1, 3, 1], [0, 0, 5]])
    assert per_class_accuracy(cm).tolist() == pytest.approx([0.8, 0.6, 1.0])


def test_most_confident_mistakes():
    probs = torch.tensor([
        [0.90, 0.05, 0.05],  # true 1: wrong, 0.90
        [0.10, 0.80, 0.10],  # true 1: right
        [0.20, 0.20, 0.60],  # true 0: wrong, 0.60
        [0.05, 0.95, 0.00],  # true 2: wrong, 0.95
        [0.70, 0.20, 0.10],  # true 0: right
    ])
    y_true = torch.tensor([1, 1, 0, 2, 0])
    mistakes = most_confident_mistakes(probs, y_true, k=2)
    assert mistakes.indices.tolist() == [3, 0]
    assert mistakes.predicted.tolist() == [1, 0]
    assert mistakes.confidence.tolist() == pytest.approx([0.95, 0.90])
    assert mistakes.true_prob.tolist() == pytest.approx([0.0, 0.05])
    assert most_confident_mistakes(probs, y_true, k=10).indices.tolist() == [3, 0, 2]
    assert most_confident_mistakes(probs[[1, 4]], y_true[[1, 4]]).indices.numel() == 0


def test_errors():
    with pytest.raises(ValueError, match=r"y_pred must hold class indices in \[0, 3\)"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match=r"same length, got 2 and 3"):
        confusion_matrix([0, 1], [0, 1, 1], 3)
    with pytest.raises(ValueError, match=r"probs has 2 rows but y_true has 3 labels"):
        most_confident_mistakes(torch.ones(2, 3) / 3, [0, 1, 2])
    with pytest.raises(ValueError, match=r"cm must be a square"):
        per_class_accuracy(torch.ones(2, 3))
