"""Bar charts: the class probabilities for one image, and the accuracy of each class."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from cnnkit.viz._figure import new_figure, save_figure, to_numpy


def _check_names(values: np.ndarray, class_names, name: str) -> list[str]:
    names = [str(n) for n in class_names]
    if values.ndim != 1 or len(names) != values.size:
        raise ValueError(f"{name} must be (K,) with one value per class name; got shape "
                         f"{values.shape} and {len(names)} class names")
    return names


def plot_class_probabilities(probs, class_names, *, title: str = "Class probabilities (softmax)",
                             path: str | os.PathLike | None = None) -> Figure:
    """Horizontal bars of the softmax output, one per class, the predicted class highlighted.

    Args:
        probs: (K,) probabilities.
        class_names: K names.
        path: also write the figure as a PNG here.

    Example:
        >>> fig = plot_class_probabilities([0.7, 0.2, 0.1], ["cat", "dog", "bird"])
    """
    values = to_numpy(probs).astype(np.float64)
    names = _check_names(values, class_names, "probs")
    fig = new_figure(6.0, max(2.5, 0.3 * len(names) + 1.2))
    ax = fig.subplots()
    colours = ["tab:orange" if i == values.argmax() else "tab:blue" for i in range(values.size)]
    bars = ax.barh(np.arange(values.size), values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=2, fontsize=8)
    ax.set_yticks(np.arange(values.size), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("probability")
    ax.set_ylabel("class")
    ax.set_title(f"{title}: predicted {names[int(values.argmax())]!r}")
    return save_figure(fig, path)


def plot_per_class_accuracy(accuracy, class_names, *, path: str | os.PathLike | None = None) -> Figure:
    """Bars of each class's accuracy (recall), with the mean as a dashed line.

    Args:
        accuracy: (K,) fractions in [0, 1]; NaN (a class without samples) is drawn as no bar.
        class_names: K names.
        path: also write the figure as a PNG here.

    Example:
        >>> fig = plot_per_class_accuracy([0.9, 0.5], ["cat", "dog"])
    """
    values = to_numpy(accuracy).astype(np.float64)
    names = _check_names(values, class_names, "accuracy")
    fig = new_figure(max(4.0, 0.4 * len(names) + 2.0), 3.5)
    ax = fig.subplots()
    ax.bar(np.arange(values.size), np.nan_to_num(values), color="tab:blue")
    mean = np.nanmean(values) if np.isfinite(values).any() else float("nan")
    ax.axhline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.1%}")
    ax.set_xticks(np.arange(values.size), names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_xlabel("true class")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_title("Per-class accuracy")
    ax.legend()
    return save_figure(fig, path)
