"""Training curves: panels and lines follow the keys present, missing values leave gaps."""
from __future__ import annotations

import json

import pytest

from cnnkit.errors import DataError
from cnnkit.viz import plot_training_curves, read_metrics

FULL = [
    {"epoch": 1, "loss": 2.0, "accuracy": 0.3, "val_loss": 2.1, "val_accuracy": 0.25, "lr": 0.1},
    {"epoch": 2, "loss": 1.2, "accuracy": 0.6, "val_loss": 1.4, "val_accuracy": 0.55, "lr": 0.05},
    {"epoch": 3, "loss": 0.8, "accuracy": 0.8, "val_loss": 1.0, "val_accuracy": 0.7, "lr": 0.01},
]


def test_three_panels_with_train_and_validation_lines(tmp_path, check_png):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in FULL) + "\n")
    out = tmp_path / "curves.png"
    fig = plot_training_curves(metrics, path=out)
    check_png(out)
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy", "Learning rate"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2, 1]
    loss_ax = fig.axes[0]
    train, val = loss_ax.get_lines()
    assert list(train.get_xdata()) == [1, 2, 3] and list(train.get_ydata()) == [2.0, 1.2, 0.8]
    assert list(val.get_ydata()) == [2.1, 1.4, 1.0]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train", "validation"]
    assert fig.axes[2].get_yscale() == "log" and loss_ax.get_xlabel() == "epoch"


def test_missing_keys_are_tolerated():
    records = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5, "val_loss": 0.7},
               {"epoch": 3, "loss": None, "val_loss": float("nan")}]
    fig = plot_training_curves(records)
    assert [ax.get_title() for ax in fig.axes] == ["Loss"]
    train, val = fig.axes[0].get_lines()
    assert list(train.get_xdata()) == [1, 2] and list(val.get_xdata()) == [2]


def test_aliases_and_no_epoch_key():
    fig = plot_training_curves([{"train_loss": 1.0, "acc": 0.5}, {"train_loss": 0.9, "acc": 0.6}])
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    assert list(fig.axes[1].get_lines()[0].get_xdata()) == [1, 2]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match=r"metrics has no loss, accuracy or lr values"):
        plot_training_curves([{"epoch": 1}])
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"loss": 1}\n\n{oops\n')
    with pytest.raises(DataError, match=r"metrics.jsonl:3: not valid JSON"):
        read_metrics(bad)
    with pytest.raises(FileNotFoundError):
        plot_training_curves(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"path must end in .png"):
        plot_training_curves(FULL, path=tmp_path / "curves.jpg")
