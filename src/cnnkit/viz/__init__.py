"""Pictures of what a CNN does, drawn with matplotlib's non-interactive Agg backend.

Every ``plot_*`` function takes numbers (usually from ``cnnkit.inspect``), returns a
``matplotlib.figure.Figure`` and, given ``path=``, also writes it as a PNG. ``cnnkit.viz.overlay``
draws masks and boxes into pixel arrays with Pillow alone, for prediction and serving.

The names below are loaded on first use: importing matplotlib costs about 0.5 s
(bench/RESULTS.md), which ``cnnkit.viz.overlay`` users (``predict --out``, the server) never pay.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "plot_class_probabilities": "bars", "plot_per_class_accuracy": "bars",
    "plot_per_class_iou": "bars",
    "plot_confusion_matrix": "confusion",
    "plot_training_curves": "curves", "read_metrics": "curves",
    "plot_feature_maps": "grids", "plot_filters": "grids", "plot_image_grid": "grids",
    "plot_heatmap": "heatmap", "plot_receptive_field": "heatmap",
    "plot_conv_matrix": "kernels", "plot_kernel_result": "kernels",
    "plot_mistakes": "mistakes",
    "plot_convolution": "signals", "plot_signal_examples": "signals",
    "plot_boxes_grid": "tasks", "plot_masks_grid": "tasks", "plot_pr_curves": "tasks",
    "plot_score_maps": "tasks", "pr_curve": "tasks",
    "class_areas": "overlay", "colorize_mask": "overlay", "draw_boxes": "overlay",
    "overlay_mask": "overlay", "palette": "overlay", "png_bytes": "overlay",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnkit.viz' has no attribute {name!r}")
    if module != "overlay":
        import matplotlib  # import cost: ~0.3 s, only when a matplotlib picture is asked for

        matplotlib.use("Agg")
    value = getattr(importlib.import_module(f"cnnkit.viz.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
