"""Bar charts: the class probabilities for one image, and the accuracy (or IoU) of each class."""
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


def plot_per_class_iou(per_class_iou, class_names, *, miou: float | None = None,
                       path: str | os.PathLike | None = None) -> Figure:
    """Bars of each class's IoU (segmentation), "absent" for a class in neither truth nor prediction.

    Args:
        per_class_iou: K values in [0, 1], None for a class that is absent (it has no IoU; it is
            labelled "absent" rather than drawn as 0), e.g. ``SegmentationMetrics``'
            ``per_class_iou``.
        class_names: K names.
        miou: the mean IoU to draw as a dashed line; None: the mean of the classes present.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: the number of values and of class names differ.

    Example:
        >>> fig = plot_per_class_iou([0.98, 0.7, None], ["background", "cat", "dog"])
    """
    present = np.array([value is not None for value in per_class_iou], dtype=bool)
    values = np.array([np.nan if value is None else float(value) for value in per_class_iou])
    names = _check_names(values, class_names, "per_class_iou")
    if miou is None and present.any():
        miou = float(np.nanmean(values))
    fig = new_figure(max(4.0, 0.4 * len(names) + 2.0), 3.5)
    ax = fig.subplots()
    positions = np.arange(values.size)
    bars = ax.bar(positions[present], values[present], color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values[present]], padding=2, fontsize=7)
    for position in positions[~present]:
        ax.text(position, 0.02, "absent", rotation=90, ha="center", va="bottom", fontsize=7,
                color="0.4")
    if miou is not None:
        ax.axhline(miou, color="tab:red", linestyle="--", label=f"mIoU {miou:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(positions, names, rotation=45, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("class")
    ax.set_ylabel("IoU (intersection / union)")
    ax.set_title("Per-class IoU")
    return save_figure(fig, path)
