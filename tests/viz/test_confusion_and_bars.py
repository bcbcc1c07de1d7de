"""Confusion matrix, per-class accuracy and class-probability pictures: the numbers drawn."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.viz import plot_class_probabilities, plot_confusion_matrix, plot_per_class_accuracy

CM = torch.tensor([[8, 2, 0], [1, 3, 1], [0, 0, 5]])
NAMES = ["cat", "dog", "bird"]


def _cell_texts(fig):
    return [t.get_text() for t in fig.axes[0].texts]


def test_counts(tmp_path, check_png):
    fig = plot_confusion_matrix(CM, NAMES, path=tmp_path / "cm.png")
    check_png(tmp_path / "cm.png")
    assert _cell_texts(fig) == ["8", "2", "0", "1", "3", "1", "0", "0", "5"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    assert "20 samples, accuracy 80.0%" in ax.get_title()
    assert np.array_equal(ax.images[0].get_array(), CM.numpy())


def test_row_normalised(tmp_path, check_png):
    fig = plot_confusion_matrix(CM.numpy(), NAMES, normalize=True, path=tmp_path / "cmn.png")
    check_png(tmp_path / "cmn.png")
    assert _cell_texts(fig)[:3] == ["0.80", "0.20", "0.00"]
    assert np.allclose(fig.axes[0].images[0].get_array().sum(axis=1), 1.0)
    assert "row-normalised" in fig.axes[0].get_title()


def test_many_classes_are_not_annotated():
    cm = np.eye(30, dtype=int) * 3
    fig = plot_confusion_matrix(cm, [str(k) for k in range(30)])
    assert len(fig.axes[0].texts) == 0


def test_confusion_errors():
    with pytest.raises(ValueError, match=r"class_names has 2 names but cm is 3x3"):
        plot_confusion_matrix(CM, ["a", "b"])
    with pytest.raises(ValueError, match=r"cm must be a square"):
        plot_confusion_matrix(np.ones((2, 3)), ["a", "b"])


def test_class_probabilities_bars(tmp_path, check_png):
    fig = plot_class_probabilities(torch.tensor([0.1, 0.7, 0.2]), NAMES, path=tmp_path / "p.png")
    check_png(tmp_path / "p.png")
    ax = fig.axes[0]
    assert [round(p.get_width(), 6) for p in ax.patches] == [0.1, 0.7, 0.2]
    assert "predicted 'dog'" in ax.get_title() and ax.get_xlabel() == "probability"
    with pytest.raises(ValueError, match=r"probs must be \(K,\) with one value per class name"):
        plot_class_probabilities([0.5, 0.5], NAMES)


def test_per_class_accuracy_bars(tmp_path, check_png):
    fig = plot_per_class_accuracy([0.8, 0.6, float("nan")], NAMES, path=tmp_path / "acc.png")
    check_png(tmp_path / "acc.png")
    ax = fig.axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.8, 0.6, 0.0]
    assert ax.get_legend().get_texts()[0].get_text() == "mean 70.0%"
