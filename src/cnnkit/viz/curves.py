"""Training curves: loss, accuracy and learning rate per epoch, train and validation."""
from __future__ import annotations

import json
import math
import os

from matplotlib.figure import Figure

from cnnkit.errors import DataError
from cnnkit.viz._figure import new_figure, save_figure

# (panel title, y label, [(line label, accepted keys, style)])
_PANELS = (
    ("Loss", "loss", [("train", ("loss", "train_loss"), "-o"),
                      ("validation", ("val_loss",), "--s")]),
    ("Accuracy", "accuracy", [("train", ("accuracy", "acc", "train_accuracy", "train_acc"), "-o"),
                              ("validation", ("val_accuracy", "val_acc"), "--s")]),
    ("Learning rate", "learning rate", [("lr", ("lr", "learning_rate"), "-")]),
)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Read a metrics.jsonl file (one JSON object per epoch; blank lines skipped).

    Raises:
        FileNotFoundError: no such file.
        DataError: a line that is not a JSON object (the message names the file and line).
    """
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}); each line of a "
                                "metrics file must be one JSON object") from exc
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {record!r}")
            records.append(record)
    return records


def _series(records: list[dict], keys: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """(epochs, values) for the first of ``keys`` that each record has, skipping missing/NaN."""
    xs, ys = [], []
    for index, record in enumerate(records):
        value = next((record[k] for k in keys if record.get(k) is not None), None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(record.get("epoch", index + 1))
            ys.append(float(value))
    return xs, ys


def plot_training_curves(metrics, path: str | os.PathLike | None = None) -> Figure:
    """Draw loss, accuracy and learning rate against the epoch, train and validation lines.

    A panel appears only if some epoch has one of its keys; a missing value in one epoch just
    leaves a gap. Keys understood: ``loss``/``train_loss``, ``val_loss``, ``accuracy``/``acc``/
    ``train_accuracy``, ``val_accuracy``/``val_acc``, ``lr``/``learning_rate``; the x axis is
    ``epoch`` (or the line number).

    Args:
        metrics: path to a metrics.jsonl, or a list of per-epoch dicts.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: no record has any of the known keys.
        DataError: a malformed metrics file.

    Example:
        >>> fig = plot_training_curves([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}])
        >>> [ax.get_title() for ax in fig.axes]
        ['Loss']
    """
    records = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    panels = []
    for title, ylabel, lines in _PANELS:
        drawn = [(label, *_series(records, keys), style) for label, keys, style in lines]
        drawn = [line for line in drawn if line[1]]
        if drawn:
            panels.append((title, ylabel, drawn))
    if not panels:
        raise ValueError(f"metrics has no loss, accuracy or lr values to plot ({len(records)} "
                         "records); expected keys like 'loss', 'val_loss', 'accuracy', 'lr'")
    fig = new_figure(4.5 * len(panels), 3.6)
    for ax, (title, ylabel, drawn) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for label, xs, ys, style in drawn:
            ax.plot(xs, ys, style, label=label, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if title == "Learning rate" and min(min(ys) for _, _, ys, _ in drawn) > 0:
            ax.set_yscale("log")
        ax.legend()
    fig.suptitle("Training curves")
    return save_figure(fig, path)
