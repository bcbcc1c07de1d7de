"""Pictures of the dense tasks: boxes, mask overlays, PR curves, score maps, per-class IoU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.viz import (overlay_mask, plot_boxes_grid, plot_masks_grid, plot_per_class_iou,
                        plot_pr_curves, plot_score_maps, pr_curve)
from cnnkit.viz.tasks import PRED_COLOR, TRUE_COLOR

NAMES = ["zero", "one", "two"]


def _images(n, size=16):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=generator)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _legend(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _png_size_matches(fig, path):
    with Image.open(path) as image:
        return image.size == tuple(int(round(v)) for v in fig.get_size_inches() * fig.dpi)


def test_localisation_boxes(tmp_path, check_png):
    fig = plot_boxes_grid(_images(2), torch.tensor([[2.0, 3.0, 9.0, 12.0], [0.0, 0.0, 16.0, 16.0]]),
                          torch.tensor([0, 2]), np.array([[3, 3, 9, 11], [1, 1, 15, 15]]), [0, 1],
                          NAMES, pred_scores=[0.91, 0.4], path=tmp_path / "loc.png")
    check_png(tmp_path / "loc.png")
    assert _png_size_matches(fig, tmp_path / "loc.png")
    first = fig.axes[0]
    true_box, pred_box = first.patches
    assert true_box.get_xy() == (1.5, 2.5) and (true_box.get_width(), true_box.get_height()) == (7, 9)
    assert true_box.get_edgecolor()[:3] == pytest.approx(_rgb(TRUE_COLOR))
    assert pred_box.get_edgecolor()[:3] == pytest.approx(_rgb(PRED_COLOR))
    assert _texts(fig) == ["zero", "zero 0.91", "two", "one 0.40"]
    assert _legend(fig) == ["true box (label above)", "predicted box (label and score below)"]


def _rgb(hex_colour):
    return [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]


def test_detection_padded_and_list_layouts(tmp_path, check_png):
    true_boxes = torch.zeros(2, 3, 4)
    true_boxes[0, :2] = torch.tensor([[1.0, 1.0, 5.0, 5.0], [8.0, 8.0, 14.0, 14.0]])
    true_labels = torch.tensor([[1, 2, -1], [-1, -1, -1]])  # the second image has no object
    pred_boxes = [torch.tensor([[1.0, 2.0, 5.0, 5.0]]), torch.zeros(0, 4)]
    pred_labels = [torch.tensor([1]), torch.zeros(0, dtype=torch.int64)]
    fig = plot_boxes_grid(_images(2), true_boxes, true_labels, pred_boxes, pred_labels, NAMES,
                          pred_scores=[torch.tensor([0.5]), torch.zeros(0)],
                          path=tmp_path / "det.png")
    check_png(tmp_path / "det.png")
    assert [len(ax.patches) for ax in fig.axes] == [3, 0]
    assert _texts(fig) == ["one", "two", "one 0.50"]
    truth_only = plot_boxes_grid(_images(2), true_boxes, true_labels, None, None, NAMES)
    assert _legend(truth_only) == ["true box (label above)"]


def test_boxes_grid_errors():
    images = _images(2)
    with pytest.raises(ValueError, match=r"true_boxes must be \(N, 4\).*N = 2 images; got boxes \(2, 5\)"):
        plot_boxes_grid(images, np.zeros((2, 5)), [0, 0], None, None, NAMES)
    with pytest.raises(ValueError, match=r"pred_boxes: labels \(and scores\) must have one entry per "
                                         r"box; got boxes \(2, 3, 4\), labels \(2, 2\)"):
        plot_boxes_grid(images, None, None, np.ones((2, 3, 4)), np.zeros((2, 2)), NAMES)
    with pytest.raises(ValueError, match=r"got boxes \(2, 4\), labels \(3,\)"):
        plot_boxes_grid(images, np.ones((2, 4)), [0, 1, 2], None, None, NAMES)
    with pytest.raises(ValueError, match=r"true_labels holds label 3, outside 0\.\.2"):
        plot_boxes_grid(images, np.ones((2, 4)), [0, 3], None, None, NAMES)
    with pytest.raises(ValueError, match=r"pred_boxes: the box, label and score lists must have one"):
        plot_boxes_grid(images, None, None, [np.zeros((0, 4))], [np.zeros(0)], NAMES)
    with pytest.raises(ValueError, match=r"pred_boxes\[0\]: expected boxes \(D, 4\) with D labels"):
        plot_boxes_grid(images, None, None, [np.zeros((1, 4)), np.zeros((0, 4))],
                        [np.zeros(2), np.zeros(0)], NAMES)
    with pytest.raises(ValueError, match=r"got neither"):
        plot_boxes_grid(images, None, None, None, None, NAMES)


def test_masks_grid(tmp_path, check_png):
    true = torch.zeros(3, 16, 16, dtype=torch.uint8)
    true[:, 4:10, 4:10] = 2
    true[0, 0, :] = 255
    pred = true.clone()
    pred[0, 0, :] = 0
    pred[1, 4:6, 4:10] = 0  # 12 of 256 pixels wrong
    images = _images(3)
    fig = plot_masks_grid(images, true, pred, ["background", "one", "two"], ncols=2,
                          path=tmp_path / "masks.png")
    check_png(tmp_path / "masks.png")
    assert _png_size_matches(fig, tmp_path / "masks.png")
    assert len(fig.axes) == 2 * 3 * 2  # two blocks of (image, true, predicted) rows, 2 columns
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["image", "true", "predicted"] * 2
    assert "pixel acc 95.3%" in [ax.get_title() for ax in fig.axes]
    assert _legend(fig) == ["two", "ignore (255)"], "only the classes present, not background"
    shown = np.asarray(fig.axes[2 * 2].images[0].get_array())  # row 2, column 0: first prediction
    assert np.array_equal(shown, overlay_mask(images[0], pred[0], 3))
    assert np.allclose(fig.axes[0].images[0].get_array(), images[0, 0].numpy() / 255)


def test_masks_grid_truth_only_on_rgb_images():
    images = [np.full((3, 8, 8), 90, np.uint8), np.full((3, 8, 8), 30, np.uint8)]
    masks = [np.eye(8, dtype=np.int64), np.zeros((8, 8), np.int64)]
    fig = plot_masks_grid(images, masks, None, ["background", "cat"])
    assert len(fig.axes) == 2 * 2 and _legend(fig) == ["cat"]
    assert fig.get_suptitle() == "Masks: true (background = image)"
    shown = np.asarray(fig.axes[2].images[0].get_array())  # (H, W, 3) overlay of the first image
    assert shown[0, 0].tolist() == [109, 45, 45] and shown[0, 1].tolist() == [90, 90, 90]


def test_masks_grid_errors():
    with pytest.raises(ValueError, match=r"true_masks must have one \(H, W\) mask per image: got 1"):
        plot_masks_grid(_images(2), torch.zeros(1, 16, 16, dtype=torch.uint8), None, NAMES)
    with pytest.raises(ValueError, match=r"predicted mask 0: mask must have the image's size"):
        plot_masks_grid(_images(1), torch.zeros(1, 16, 16, dtype=torch.uint8),
                        torch.zeros(1, 8, 8, dtype=torch.uint8), NAMES)
    with pytest.raises(ValueError, match=r"true mask 0: mask holds class index 7, outside 0\.\.2"):
        plot_masks_grid(_images(1), torch.full((1, 16, 16), 7, dtype=torch.uint8), None, NAMES)


def test_pr_curve_hand_computed():
    # Sorted by score: 0.9 hit, 0.8 miss, 0.6 hit, 0.3 miss; 3 true objects.
    recall, precision = pr_curve([0.3, 0.9, 0.6, 0.8], [False, True, True, False], num_true=3)
    assert recall == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert precision == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    empty_recall, empty_precision = pr_curve([], [], num_true=2)
    assert empty_recall.shape == empty_precision.shape == (0,)
    with pytest.raises(ValueError, match=r"scores and matched must both be \(D,\), got shapes \(2,\) and \(3,\)"):
        pr_curve([0.1, 0.2], [True, False, True], num_true=2)
    with pytest.raises(ValueError, match=r"matched has 2 true positives but num_true is 1"):
        pr_curve([0.1, 0.2], [True, True], num_true=1)


def test_pr_curves(tmp_path, check_png):
    curves = {"one": pr_curve([0.9, 0.8, 0.7], [True, False, True], 2),
              "two": (np.array([]), np.array([]))}
    fig = plot_pr_curves(curves, ap={"one": 0.8333, "two": None}, path=tmp_path / "pr.png")
    check_png(tmp_path / "pr.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one (AP 0.833)", "two (AP n/a)"]
    assert ax.get_xlabel() == "recall" and ax.get_ylabel() == "precision"
    assert ax.get_title() == "Precision-recall per class: mean AP 0.833"
    assert ax.lines[0].get_xdata().tolist() == [0.0, 0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"curves\['x'\] must be \(recall \(D,\), precision \(D,\)\)"):
        plot_pr_curves({"x": ([0.5, 1.0], [1.0])})
    with pytest.raises(ValueError, match=r"curves is empty"):
        plot_pr_curves({})


def test_score_maps(tmp_path, check_png):
    maps = torch.zeros(3, 4, 4)
    maps[2, 1, 1], maps[0, 3, 3], maps[1, 0, 0] = 0.9, 0.6, 0.2
    fig = plot_score_maps(_images(1, size=32)[0], maps, NAMES, top=2, path=tmp_path / "maps.png")
    check_png(tmp_path / "maps.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["image", "two: max 0.90", "zero: max 0.60"]
    overlay = fig.axes[1].images[1]
    assert overlay.get_extent() == [-0.5, 31.5, 31.5, -0.5], "the map is stretched over the image"
    assert overlay.get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"maps must be \(K, h, w\) with K = 3 class names, got shape \(2, 4, 4\)"):
        plot_score_maps(_images(1)[0], torch.zeros(2, 4, 4), NAMES)


def test_per_class_iou(tmp_path, check_png):
    fig = plot_per_class_iou([0.95, None, 0.55], ["background", "one", "two"],
                             path=tmp_path / "iou.png")
    check_png(tmp_path / "iou.png")
    ax = fig.axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.95, 0.55]
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == [0.0, 2.0]
    assert "absent" in [t.get_text() for t in ax.texts]
    assert ax.get_legend().get_texts()[0].get_text() == "mIoU 0.750"
    given = plot_per_class_iou([0.5, 0.7], ["a", "b"], miou=0.6)
    assert given.axes[0].get_legend().get_texts()[0].get_text() == "mIoU 0.600"
    with pytest.raises(ValueError, match=r"per_class_iou must be \(K,\) with one value per class name"):
        plot_per_class_iou([0.5], ["a", "b"])
