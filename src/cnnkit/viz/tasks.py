"""Pictures for localisation, segmentation and detection: boxes, mask overlays, PR curves, score maps.

Boxes are pixel ``(x_min, y_min, x_max, y_max)`` with max exclusive (x right, y down); masks are
``(H, W)`` class indices with 255 = ignore. The mask colours come from ``cnnkit.viz.overlay``, so
a picture here and a ``predict --out`` overlay use the same colour for the same class.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from cnnkit._checks import check_positive_int
from cnnkit.viz._figure import image_for_display, new_figure, save_figure, to_numpy
from cnnkit.viz.overlay import IGNORE_COLOR, IGNORE_INDEX, overlay_mask, palette

TRUE_COLOR = "#33bbff"   # sky blue: the ground truth
PRED_COLOR = "#ff8c00"   # orange: the predictions (blue/orange stays apart for colour-blind eyes)


# ---------------------------------------------------------------------------------------------
# Boxes on a grid of images
# ---------------------------------------------------------------------------------------------

BoxSet = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # boxes (D, 4), labels (D,), scores


def _box_list(boxes: list[np.ndarray], labels, scores, count: int, name: str) -> list[BoxSet]:
    """Per-image lists of (D_i, 4) boxes, (D_i,) labels and optional (D_i,) scores, checked."""
    labels = [to_numpy(lab).astype(np.int64).reshape(-1) for lab in labels]  # (D_i,)
    scores = None if scores is None else [to_numpy(s).astype(np.float64).reshape(-1)
                                          for s in scores]
    if len(boxes) != count or len(labels) != count or (scores is not None and len(scores) != count):
        raise ValueError(f"{name}: the box, label and score lists must have one entry per image "
                         f"({count}), got {len(boxes)}, {len(labels)} and "
                         f"{'-' if scores is None else len(scores)}")
    out = []
    for i, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
        if image_boxes.size == 0:
            image_boxes = image_boxes.reshape(0, 4)
        image_scores = None if scores is None else scores[i]
        if (image_boxes.ndim != 2 or image_boxes.shape[1] != 4
                or len(image_labels) != len(image_boxes)
                or (image_scores is not None and len(image_scores) != len(image_boxes))):
            raise ValueError(f"{name}[{i}]: expected boxes (D, 4) with D labels and scores, got "
                             f"boxes {tuple(image_boxes.shape)}, {len(image_labels)} labels"
                             f"{'' if image_scores is None else f', {len(image_scores)} scores'}")
        out.append((image_boxes, image_labels, image_scores))
    return out


def _box_sets(boxes, labels, scores, count: int, name: str) -> list[BoxSet]:
    """Any of the three box layouts -> one ``(boxes (D, 4), labels (D,), scores (D,) | None)`` per image.

    Layouts: localisation ``(N, 4)`` + ``(N,)``; padded detection ``(N, M, 4)`` + ``(N, M)`` with
    label -1 = no object; or lists of per-image ``(D_i, 4)`` + ``(D_i,)``.
    """
    if isinstance(boxes, (list, tuple)):
        parts = [to_numpy(b).astype(np.float64) for b in boxes]
        if not (parts and all(p.ndim == 1 for p in parts)):
            return _box_list(parts, labels, scores, count, name)
        boxes = np.stack(parts)  # N rows of (4,) -> (N, 4): one box per image
    array = to_numpy(boxes).astype(np.float64)
    label_array = to_numpy(labels).astype(np.int64)
    score_array = None if scores is None else to_numpy(scores).astype(np.float64)
    given = (f"boxes {array.shape}, labels {label_array.shape}"
             + ("" if score_array is None else f", scores {score_array.shape}"))
    if array.ndim == 2:  # localisation: one box per image
        array = array[:, None]  # (N, 4) -> (N, 1, 4)
        label_array = label_array[..., None]  # (N,) -> (N, 1)
        score_array = None if score_array is None else score_array[..., None]  # (N,) -> (N, 1)
    if array.ndim != 3 or array.shape[0] != count or array.shape[2] != 4:
        raise ValueError(f"{name} must be (N, 4) (localisation), (N, M, 4) (padded detection) or a "
                         f"list of N (D_i, 4) arrays, with N = {count} images; got {given}")
    if label_array.shape != array.shape[:2] or (
            score_array is not None and score_array.shape != array.shape[:2]):
        raise ValueError(f"{name}: labels (and scores) must have one entry per box; got {given}")
    out = []
    for i in range(count):
        keep = label_array[i] >= 0  # -1 pads the detection layout
        out.append((array[i][keep], label_array[i][keep],
                    None if score_array is None else score_array[i][keep]))
    return out


def _class_name(class_names: Sequence[str], label: int, name: str) -> str:
    if not 0 <= label < len(class_names):
        raise ValueError(f"{name} holds label {label!r}, outside 0..{len(class_names) - 1} for "
                         f"{len(class_names)} class names")
    return str(class_names[label])


def _draw_box_set(ax, box_set, class_names, colour: str, *, below: bool, name: str) -> None:
    """Outline each box on ``ax`` (pixel centres at integers) with its label above or below it."""
    boxes, labels, scores = box_set
    for d, (x_min, y_min, x_max, y_max) in enumerate(boxes):
        ax.add_patch(Rectangle((x_min - 0.5, y_min - 0.5), x_max - x_min, y_max - y_min,
                               fill=False, edgecolor=colour, linewidth=1.2))
        text = _class_name(class_names, int(labels[d]), name)
        if scores is not None:
            text += f" {scores[d]:.2f}"
        ax.text(x_min - 0.5, (y_max if below else y_min) - 0.5, text, fontsize=6, color="white",
                va="top" if below else "bottom", ha="left", clip_on=True,
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.85})


def plot_boxes_grid(images, true_boxes, true_labels, pred_boxes, pred_labels, class_names, *,
                    pred_scores=None, ncols: int = 8,
                    path: str | os.PathLike | None = None) -> Figure:
    """Draw true boxes (blue, label above) and predicted boxes (orange, label and score below).

    Works for localisation (one box per image) and detection (any number per image, 0 included).

    Args:
        images: (N, C, H, W) or a list of (C, H, W) / (H, W) images (uint8 or float).
        true_boxes, true_labels: (N, 4) and (N,) (localisation); (N, M, 4) and (N, M) with label
            -1 = no object (padded detection); or lists of per-image (D_i, 4) and (D_i,).
            None for both draws only the predictions.
        pred_boxes, pred_labels: the same layouts for the predictions (None: truth only).
        class_names: names indexed by label.
        pred_scores: optional scores in the layout of ``pred_labels``, written after the label.
        ncols: images per row.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: no images, layouts that do not match the number of images, a label outside
            ``class_names``, or neither truth nor predictions given.

    Example:
        >>> import torch
        >>> fig = plot_boxes_grid(torch.zeros(2, 1, 16, 16, dtype=torch.uint8),
        ...                       [[2, 2, 8, 8], [4, 4, 12, 12]], [0, 1],
        ...                       [[3, 2, 8, 9], [4, 5, 12, 12]], [0, 0], ["a", "b"])
    """
    images = list(images)
    if not images:
        raise ValueError("images is empty; pass at least one image")
    check_positive_int(ncols, "ncols")
    if true_boxes is None and pred_boxes is None:
        raise ValueError("pass true_boxes/true_labels, pred_boxes/pred_labels or both; got neither")
    count = len(images)
    truth = (None if true_boxes is None
             else _box_sets(true_boxes, true_labels, None, count, "true_boxes"))
    preds = (None if pred_boxes is None
             else _box_sets(pred_boxes, pred_labels, pred_scores, count, "pred_boxes"))
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    fig = new_figure(1.9 * ncols, 1.9 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)  # (rows, cols) -> (rows*cols,)
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index >= count:
            continue
        array, cmap = image_for_display(images[index])
        ax.imshow(array, cmap=cmap, interpolation="nearest")
        if truth is not None:
            _draw_box_set(ax, truth[index], class_names, TRUE_COLOR, below=False, name="true_labels")
        if preds is not None:
            _draw_box_set(ax, preds[index], class_names, PRED_COLOR, below=True, name="pred_labels")
    handles = []
    if truth is not None:
        handles.append(Patch(facecolor="none", edgecolor=TRUE_COLOR, label="true box (label above)"))
    if preds is not None:
        score = " and score" if pred_scores is not None else ""
        handles.append(Patch(facecolor="none", edgecolor=PRED_COLOR,
                             label=f"predicted box (label{score} below)"))
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Segmentation masks as colour overlays
# ---------------------------------------------------------------------------------------------

def _mask_list(masks, count: int, name: str) -> list[np.ndarray]:
    masks = [to_numpy(m) for m in masks]
    if len(masks) != count:
        raise ValueError(f"{name} must have one (H, W) mask per image: got {len(masks)} masks for "
                         f"{count} images")
    return masks


def plot_masks_grid(images, true_masks, pred_masks, class_names, *, ncols: int = 4,
                    path: str | os.PathLike | None = None) -> Figure:
    """Show each image above its true mask overlay and its predicted mask overlay.

    The images are laid out ``ncols`` to a block; each block has a row of images, a row of true
    overlays and (given ``pred_masks``) a row of predicted overlays, each titled with its pixel
    accuracy. Background (class 0) pixels are the image itself; ignore pixels (255) are pale. The
    legend lists the colour of every class present (and "ignore" when there is any).

    Args:
        images: (N, C, H, W) uint8 or a list of uint8 (C, H, W) / (H, W) images.
        true_masks: (N, H, W) class indices or a list of (H, W); 255 = ignore.
        pred_masks: the predicted masks in the same layout, or None to show the truth only.
        class_names: K names, index 0 = background.
        ncols: images per block row.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: no images, a mask list of the wrong length, a mask of another size than its
            image, or a class index outside ``class_names``.

    Example:
        >>> import torch
        >>> masks = torch.zeros(2, 8, 8, dtype=torch.uint8); masks[:, 2:5, 2:5] = 1
        >>> fig = plot_masks_grid(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), masks, masks,
        ...                       ["background", "digit"])
    """
    images = list(images)
    if not images:
        raise ValueError("images is empty; pass at least one image")
    check_positive_int(ncols, "ncols")
    count, num_classes = len(images), len(class_names)
    truth = _mask_list(true_masks, count, "true_masks")
    preds = None if pred_masks is None else _mask_list(pred_masks, count, "pred_masks")
    rows = [("image", None), ("true", truth)] + ([] if preds is None else [("predicted", preds)])
    ncols = min(ncols, count)
    blocks = math.ceil(count / ncols)
    fig = new_figure(1.8 * ncols + 1.8, 1.8 * len(rows) * blocks + 0.4)
    axes = fig.subplots(len(rows) * blocks, ncols, squeeze=False)
    present: set[int] = set()
    for index in range(blocks * ncols):
        block, col = divmod(index, ncols)
        for r, (row_name, masks) in enumerate(rows):
            ax = axes[block * len(rows) + r, col]
            if index >= count:
                ax.set_axis_off()
                continue
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(row_name)
            if masks is None:
                array, cmap = image_for_display(images[index])
                ax.imshow(array, cmap=cmap, interpolation="nearest")
                continue
            try:
                shown = overlay_mask(images[index], masks[index], num_classes)
            except ValueError as error:
                raise ValueError(f"{row_name} mask {index}: {error}") from None
            ax.imshow(shown, interpolation="nearest")
            present.update(int(k) for k in np.unique(masks[index]))
            if masks is preds:
                true = truth[index].astype(np.int64)
                scored = true != IGNORE_INDEX
                if scored.any():
                    accuracy = float((masks[index][scored] == true[scored]).mean())
                    ax.set_title(f"pixel acc {accuracy:.1%}", fontsize=7)
    colours = palette(num_classes) / 255.0
    handles = [Patch(color=colours[k], label=str(class_names[k]))
               for k in sorted(present) if 0 < k < num_classes]
    if IGNORE_INDEX in present:
        handles.append(Patch(facecolor=np.array(IGNORE_COLOR) / 255.0, edgecolor="0.5",
                             label="ignore (255)"))
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="classes")
    fig.suptitle("Masks: " + ", ".join(name for name, _ in rows[1:]) + " (background = image)")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Precision-recall curves
# ---------------------------------------------------------------------------------------------

def pr_curve(scores, matched, num_true: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each detection of one class, taken from the highest score down.

    With detections sorted by score (ties keep their order), after the first i of them
    ``recall_i = TP_i / num_true`` and ``precision_i = TP_i / i``, where TP_i counts the
    detections among them that matched a true object (each true object matched at most once,
    as the evaluator decided).

    Args:
        scores: (D,) detection scores.
        matched: (D,) booleans: the detection is a true positive.
        num_true: the number of true objects of the class (not counting ignored ones).

    Shape:
        (D,), (D,) -> recall (D,), precision (D,)

    Raises:
        ValueError: ``scores`` and ``matched`` differ in shape or are not 1-D, ``num_true`` < 1,
            or more matches than true objects.

    Example:
        >>> recall, precision = pr_curve([0.9, 0.8, 0.7], [True, False, True], num_true=4)
        >>> recall.tolist(), precision.tolist()
        ([0.25, 0.25, 0.5], [1.0, 0.5, 0.6666666666666666])
    """
    scores = to_numpy(scores).astype(np.float64)
    matched = to_numpy(matched).astype(bool)
    if scores.ndim != 1 or scores.shape != matched.shape:
        raise ValueError(f"scores and matched must both be (D,), got shapes {scores.shape} and "
                         f"{matched.shape}")
    check_positive_int(num_true, "num_true")
    if matched.sum() > num_true:
        raise ValueError(f"matched has {int(matched.sum())} true positives but num_true is "
                         f"{num_true!r}: a true object can match one detection only")
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(matched[order])
    return true_positives / num_true, true_positives / np.arange(1, len(scores) + 1)


def plot_pr_curves(curves: Mapping[str, tuple], *, ap: Mapping[str, float | None] | None = None,
                   path: str | os.PathLike | None = None) -> Figure:
    """Draw one precision-recall curve per class (a step after each detection), AP in the legend.

    Args:
        curves: ``{class name: (recall (D,), precision (D,))}``, e.g. from :func:`pr_curve`.
        ap: optional ``{class name: average precision}`` (None: not defined), shown in the legend
            and as the mean AP in the title.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: ``curves`` is empty, or a recall and precision pair differ in shape.

    Example:
        >>> fig = plot_pr_curves({"cat": ([0.5, 1.0], [1.0, 0.5])}, ap={"cat": 0.75})
    """
    if not curves:
        raise ValueError("curves is empty; pass {class name: (recall, precision)}")
    fig = new_figure(5.5, 4.5)
    ax = fig.subplots()
    for name, pair in curves.items():
        recall, precision = (to_numpy(v).astype(np.float64) for v in pair)
        if recall.ndim != 1 or recall.shape != precision.shape:
            raise ValueError(f"curves[{name!r}] must be (recall (D,), precision (D,)), got shapes "
                             f"{recall.shape} and {precision.shape}")
        label = str(name)
        if ap is not None and name in ap:
            label += " (AP n/a)" if ap[name] is None else f" (AP {ap[name]:.3f})"
        if recall.size == 0:  # no detections of this class: an entry in the legend only
            ax.plot([], [], label=label)
            continue
        # Start at recall 0 with the first precision, then a step after each detection.
        ax.step(np.concatenate([[0.0], recall]), np.concatenate([precision[:1], precision]),
                where="post", label=label)
    title = "Precision-recall per class"
    defined = [v for v in (ap or {}).values() if v is not None]
    if defined:
        title += f": mean AP {np.mean(defined):.3f}"
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# What the detector sees: per-location class scores
# ---------------------------------------------------------------------------------------------

def plot_score_maps(image, maps, class_names, *, top: int = 4,
                    path: str | os.PathLike | None = None) -> Figure:
    """Draw an image and, over it, the detector head's score map of its ``top`` highest-scoring classes.

    Each (h, w) map is stretched over the whole (H, W) image (one cell per head location, about
    H/h pixels on a side), so a cell sits on the part of the image it scores.

    Args:
        image: (C, H, W) or (H, W) image (uint8 or float).
        maps: (K, h, w) per-class scores, one map per class name (probabilities give a 0-1 scale).
        class_names: K names.
        top: how many classes to draw, ranked by their maximum score.
        path: also write the figure as a PNG here.

    Raises:
        ValueError: ``maps`` is not (K, h, w) with K = len(class_names).

    Example:
        >>> import torch
        >>> fig = plot_score_maps(torch.zeros(1, 16, 16), torch.rand(3, 4, 4), ["a", "b", "c"])
    """
    check_positive_int(top, "top")
    values = to_numpy(maps).astype(np.float64)
    if values.ndim != 3 or values.shape[0] != len(class_names):
        raise ValueError(f"maps must be (K, h, w) with K = {len(class_names)} class names, got "
                         f"shape {values.shape}")
    array, cmap = image_for_display(image)
    height, width = array.shape[:2]
    grey = array if array.ndim == 2 else array.mean(axis=2)  # (H, W, 3) -> (H, W)
    peaks = values.reshape(values.shape[0], -1).max(axis=1)  # (K, h, w) -> (K,)
    chosen = np.argsort(-peaks, kind="stable")[:top]
    low, high = (0.0, 1.0) if values.min() >= 0 and values.max() <= 1 else (values.min(),
                                                                             values.max())
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    fig = new_figure(2.2 * (len(chosen) + 1) + 0.8, 2.8)
    axes = fig.subplots(1, len(chosen) + 1, squeeze=False)[0]
    axes[0].imshow(array, cmap=cmap, interpolation="nearest")
    axes[0].set_title("image", fontsize=8)
    shown = None
    for ax, k in zip(axes[1:], chosen):
        ax.imshow(grey, cmap="gray", interpolation="nearest")
        shown = ax.imshow(values[k], cmap="magma", vmin=low, vmax=high, alpha=0.7,
                          interpolation="nearest", extent=extent)
        ax.set_title(f"{class_names[k]}: max {peaks[k]:.2f}", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=list(axes), label="score", shrink=0.8)
    h, w = values.shape[1:]
    fig.suptitle(f"What the detector sees: {h}x{w} class-score map per class "
                 f"(one cell ~ {height / h:.3g}x{width / w:.3g} pixels)", fontsize=9)
    return save_figure(fig, path)
