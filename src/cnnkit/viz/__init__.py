"""Pictures of what a CNN does, drawn with matplotlib's non-interactive Agg backend.

Every function takes numbers (usually from ``cnnkit.inspect``), returns a
``matplotlib.figure.Figure`` and, given ``path=``, also writes it as a PNG.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from cnnkit.viz.bars import plot_class_probabilities, plot_per_class_accuracy  # noqa: E402
from cnnkit.viz.confusion import plot_confusion_matrix  # noqa: E402
from cnnkit.viz.curves import plot_training_curves, read_metrics  # noqa: E402
from cnnkit.viz.grids import plot_feature_maps, plot_filters, plot_image_grid  # noqa: E402
from cnnkit.viz.heatmap import plot_heatmap, plot_receptive_field  # noqa: E402
from cnnkit.viz.kernels import plot_conv_matrix, plot_kernel_result  # noqa: E402
from cnnkit.viz.mistakes import plot_mistakes  # noqa: E402
from cnnkit.viz.signals import plot_convolution, plot_signal_examples  # noqa: E402

__all__ = [
    "plot_class_probabilities", "plot_confusion_matrix", "plot_conv_matrix", "plot_convolution",
    "plot_feature_maps", "plot_filters", "plot_heatmap", "plot_image_grid", "plot_kernel_result",
    "plot_mistakes", "plot_per_class_accuracy", "plot_receptive_field", "plot_signal_examples",
    "plot_training_curves", "read_metrics",
]
