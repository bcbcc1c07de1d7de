"""Confusion matrix picture: counts or row-normalised fractions, true class down, predicted across."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from cnnkit.inspect.mistakes import normalize_confusion
from cnnkit.viz._figure import new_figure, save_figure, to_numpy

_MAX_ANNOTATED = 20


def plot_confusion_matrix(cm, class_names, *, normalize: bool = False,
                          path: str | os.PathLike | None = None) -> Figure:
    """Draw a confusion matrix with a colour bar; each cell is written out for up to 20 classes.

    Args:
        cm: (K, K) counts, row = true class, column = predicted class.
        class_names: K names.
        normalize: show each row divided by its sum (the fraction of class i predicted as j).
        path: also write the figure as a PNG here.

    Raises:
        ValueError: ``cm`` is not square or ``class_names`` has the wrong length.

    Example:
        >>> fig = plot_confusion_matrix([[5, 1], [2, 7]], ["cat", "dog"], normalize=True)
    """
    counts = to_numpy(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {counts.shape}")
    names = [str(name) for name in class_names]
    if len(names) != counts.shape[0]:
        raise ValueError(f"class_names has {len(names)} names but cm is {counts.shape[0]}x"
                         f"{counts.shape[0]}: {class_names!r}")
    values = normalize_confusion(counts).numpy() if normalize else counts
    size = max(4.0, 0.45 * len(names) + 2.5)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="fraction of the true class" if normalize else "count")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")
    kind = "row-normalised" if normalize else "counts"
    ax.set_title(f"Confusion matrix ({kind}), {total} samples, accuracy {accuracy:.1%}")
    if len(names) <= _MAX_ANNOTATED:
        threshold = values.max() / 2 if values.size else 0
        for (row, col), value in np.ndenumerate(values):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            ax.text(col, row, text, ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")
    return save_figure(fig, path)
