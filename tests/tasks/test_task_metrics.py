"""Localisation and segmentation metrics on hand-computed boxes and masks."""
import pytest
import torch

from cnnkit.tasks.metrics import LocalizationMetrics, SegmentationMetrics


def _loc_batch():
    pred_labels = torch.tensor([1, 0, 2])
    labels = torch.tensor([1, 1, 2])
    pred_boxes = torch.tensor([[0.0, 0, 2, 2], [0.0, 0, 4, 4], [5.0, 5, 6, 6]])
    boxes = torch.tensor([[0.0, 0, 2, 4], [0.0, 0, 4, 4], [0.0, 0, 1, 1]])
    return pred_labels, pred_boxes, labels, boxes


def test_localization_metrics_hand_computed():
    m = LocalizationMetrics()
    m.update(*_loc_batch())
    # labels: 2 of 3 right; IoUs 4/8 = 0.5, 1, 0 -> mean 0.5; IoU >= 0.5: 2 of 3
    assert m.compute() == pytest.approx({"accuracy": 2 / 3, "mean_iou": 0.5, "iou50": 2 / 3})


def test_localization_state_sums_like_one_big_batch():
    pred_labels, pred_boxes, labels, boxes = _loc_batch()
    a, b, whole = LocalizationMetrics(), LocalizationMetrics(), LocalizationMetrics()
    a.update(pred_labels[:1], pred_boxes[:1], labels[:1], boxes[:1])
    b.update(pred_labels[1:], pred_boxes[1:], labels[1:], boxes[1:])
    whole.update(pred_labels, pred_boxes, labels, boxes)
    summed = LocalizationMetrics()
    summed.load_state(a.state() + b.state())
    assert summed.compute() == pytest.approx(whole.compute())
    a.merge(b)
    assert a.compute() == pytest.approx(whole.compute())


def test_localization_errors():
    m = LocalizationMetrics()
    with pytest.raises(ValueError, match="no images yet"):
        m.compute()
    with pytest.raises(ValueError, match=r"pred_boxes must have shape \(2, 4\)"):
        m.update(torch.zeros(2), torch.zeros(3, 4), torch.zeros(2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="load_state"):
        m.load_state(torch.zeros(3))


def test_segmentation_metrics_hand_computed():
    m = SegmentationMetrics(num_classes=4)
    masks = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 1, 3]]])
    m.update(pred, masks)
    out = m.compute()
    # counted pixels (truth, pred): (0,0) (0,1) (1,1) (1,1) (2,1); the 255 pixel is skipped.
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 2, FP 2 -> 2/4; class 2: TP 0, FN 1 -> 0;
    # class 3: absent from truth and (counted) prediction -> None, left out of the mean.
    assert out["per_class_iou"] == [0.5, 0.5, 0.0, None]
    assert out["miou"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert out["pixel_accuracy"] == pytest.approx(3 / 5)


def test_segmentation_predicting_an_absent_class_counts_against_miou():
    m = SegmentationMetrics(num_classes=3)
    m.update(torch.tensor([[[0, 2]]]), torch.tensor([[[0, 0]]]))
    # class 0: TP 1, FN 1 -> 1/2; class 2: FP 1 -> 0; class 1 absent -> None
    out = m.compute()
    assert out["per_class_iou"] == [0.5, None, 0.0]
    assert out["miou"] == pytest.approx(0.25)


def test_segmentation_accepts_logits_and_perfect_prediction_scores_1():
    masks = torch.tensor([[[0, 1], [2, 1]]])
    one_hot = torch.nn.functional.one_hot(masks, 3)  # (N, H, W, K)
    logits = one_hot.permute(0, 3, 1, 2).float()  # (N, H, W, K) -> (N, K, H, W)
    m = SegmentationMetrics(3)
    m.update(logits, masks)
    assert m.compute() == {"miou": 1.0, "pixel_accuracy": 1.0, "per_class_iou": [1.0, 1.0, 1.0]}


def test_segmentation_state_is_a_summable_confusion_matrix():
    masks = torch.tensor([[[0, 1], [2, 1]], [[1, 1], [0, 0]]])
    pred = torch.tensor([[[0, 0], [2, 1]], [[1, 2], [0, 1]]])
    whole, a, b = SegmentationMetrics(3), SegmentationMetrics(3), SegmentationMetrics(3)
    whole.update(pred, masks)
    a.update(pred[:1], masks[:1])
    b.update(pred[1:], masks[1:])
    assert whole.state().sum() == 8
    loaded = SegmentationMetrics(3)
    loaded.load_state(a.state() + b.state())
    assert torch.equal(loaded.state(), whole.state())
    assert loaded.compute() == whole.compute()


def test_segmentation_errors():
    m = SegmentationMetrics(2)
    with pytest.raises(ValueError, match="no pixels yet"):
        m.compute()
    with pytest.raises(ValueError, match="masks holds class index 5"):
        m.update(torch.zeros(1, 1, 1, dtype=torch.long), torch.tensor([[[5]]]))
    with pytest.raises(ValueError, match="pred must have the shape of masks"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationMetrics(0)
