"""The most confident mistakes as a captioned image grid."""
from __future__ import annotations

import os

from matplotlib.figure import Figure

from cnnkit.viz._figure import to_numpy
from cnnkit.viz.grids import plot_image_grid


def plot_mistakes(images, true, pred, probs, class_names, *,
                  path: str | os.PathLike | None = None) -> Figure:
    """Draw wrongly classified images captioned "true X / pred Y (p%)".

    Args:
        images: (N, C, H, W) or a list of (C, H, W) images (uint8 or float).
        true, pred: (N,) true and predicted class indices.
        probs: (N,) the probability given to the predicted class.
        class_names: names indexed by class.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: the arguments have different lengths, or there are no images.

    Example:
        >>> import torch
        >>> fig = plot_mistakes(torch.zeros(2, 1, 8, 8), [0, 1], [1, 0], [0.9, 0.8], ["a", "b"])
    """
    true, pred, probs = to_numpy(true), to_numpy(pred), to_numpy(probs)
    images = list(images)
    if not len(images) == len(true) == len(pred) == len(probs):
        raise ValueError(f"images, true, pred and probs must have the same length, got "
                         f"{len(images)}, {len(true)}, {len(pred)}, {len(probs)}")
    titles = [f"true {class_names[int(t)]}\npred {class_names[int(p)]} ({float(q):.0%})"
              for t, p, q in zip(true, pred, probs)]
    return plot_image_grid(images, titles, suptitle="Most confident mistakes", path=path)
