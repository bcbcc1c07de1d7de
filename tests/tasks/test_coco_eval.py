"""COCO metrics through pycocotools and VOC AP on hand-made cases with known values."""
import logging

import pytest
import torch

from cnnkit.tasks.coco_eval import coco_evaluate, to_coco_results, voc_ap


def gt(boxes, labels, ignore=None):
    out = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }
    if ignore is not None:
        out["ignore"] = torch.tensor(ignore, dtype=torch.bool)
    return out


def det(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 40.0, 30.0]
FAR = [60.0, 60.0, 70.0, 70.0]


def test_perfect_predictions_give_ap_1_also_with_empty_images(caplog, capsys):
    truth = [gt([A, B], [0, 1]), gt([], []), gt([B], [1])]
    preds = [det([A, B], [0.9, 0.8], [0, 1]), det([], [], []), det([B], [0.7], [1])]
    with caplog.at_level(logging.DEBUG, logger="cnnkit.tasks.coco_eval"):
        out = coco_evaluate(truth, preds, ["zero", "one"])
    per_class = out.pop("per_class_ap")
    assert out == pytest.approx({"map": 1.0, "map50": 1.0, "map75": 1.0, "recall": 1.0})
    assert per_class == pytest.approx({"zero": 1.0, "one": 1.0})
    assert "Average Precision" in caplog.text  # pycocotools' printout went to the log
    assert capsys.readouterr().out == ""  # and not to stdout
    voc = voc_ap(truth, preds, ["zero", "one"])
    assert voc == {"map50": 1.0, "per_class_ap": {"zero": 1.0, "one": 1.0}}


def test_hand_made_case_one_hit_one_false_positive_one_miss():
    # One image, two objects, two detections: the best-scored one hits A exactly, the next is
    # far from anything. Ranked: (hit) p=1, r=1/2; (miss) p=1/2, r=1/2.
    # COCO interpolates precision at 101 recalls 0, .01, ..., 1: it is 1 for the 51 recalls
    # <= 0.5 and 0 above (never reached), so AP = 51/101 at every IoU threshold (the hit has
    # IoU 1); recall = 1/2. VOC's all-point AP is the exact area: 1/2 * 1 = 0.5.
    truth = [gt([A, B], [0, 0])]
    preds = [det([A, FAR], [0.9, 0.8], [0, 0])]
    out = coco_evaluate(truth, preds, ["digit"])
    assert out["map"] == pytest.approx(51 / 101)
    assert out["map50"] == pytest.approx(51 / 101)
    assert out["map75"] == pytest.approx(51 / 101)
    assert out["per_class_ap"] == {"digit": pytest.approx(51 / 101)}
    assert out["recall"] == pytest.approx(0.5)
    assert voc_ap(truth, preds, ["digit"])["map50"] == pytest.approx(0.5)


def test_hand_made_case_iou_072_counts_at_5_of_10_thresholds():
    # The detection covers rows 0-7.2 of A: IoU = 72/100 = 0.72 >= .50, .55, .60, .65, .70 and
    # < .75, ..., .95; AP is 1 at five thresholds and 0 at five -> mAP 0.5, map50 1, map75 0.
    out = coco_evaluate([gt([A], [0])], [det([[0.0, 0.0, 10.0, 7.2]], [0.9], [0])], ["digit"])
    assert out["map"] == pytest.approx(0.5)
    assert out["map50"] == pytest.approx(1.0)
    assert out["map75"] == pytest.approx(0.0)
    assert out["recall"] == pytest.approx(0.5)


def test_false_positive_on_an_image_without_objects():
    # A false positive (score .9, on an empty image) ranks above the only hit (.8):
    # p = 0, r = 0; then p = 1/2, r = 1. Interpolated precision is 1/2 at every recall.
    truth = [gt([], []), gt([A], [0])]
    preds = [det([A], [0.9], [0]), det([A], [0.8], [0])]
    assert coco_evaluate(truth, preds, ["digit"])["map"] == pytest.approx(0.5)
    assert voc_ap(truth, preds, ["digit"])["map50"] == pytest.approx(0.5)


def test_crowd_boxes_are_neither_to_find_nor_false_positives():
    truth = [gt([A, B], [0, 0], ignore=[False, True])]
    # B (crowd) is not detected and a detection lands on it with the highest score: both free.
    preds = [det([B, A], [0.9, 0.5], [0, 0])]
    assert coco_evaluate(truth, preds, ["digit"])["map"] == pytest.approx(1.0)
    assert voc_ap(truth, preds, ["digit"])["map50"] == pytest.approx(1.0)
    # The same boxes without the crowd flag: B is a second object to find, and it is found.
    plain = [gt([A, B], [0, 0])]
    assert coco_evaluate(plain, [det([A], [0.5], [0])], ["digit"])["map"] == pytest.approx(51 / 101)


def test_class_without_ground_truth_has_no_ap():
    out = coco_evaluate([gt([A], [0])], [det([A, B], [0.9, 0.8], [0, 1])], ["zero", "one"])
    assert out["per_class_ap"]["zero"] == pytest.approx(1.0)
    assert out["per_class_ap"]["one"] is None
    assert out["map"] == pytest.approx(1.0)
    voc = voc_ap([gt([A], [0])], [det([A], [0.9], [0])], ["zero", "one"])
    assert voc["per_class_ap"] == {"zero": 1.0, "one": None}


def test_voc_duplicate_detection_is_a_false_positive():
    # miss (p 0, r 0), hit (p 1/2, r 1), duplicate of the hit (p 1/3, r 1) -> AP = 1 * 1/2.
    truth = [gt([A], [0])]
    preds = [det([FAR, A, A], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert voc_ap(truth, preds, ["digit"])["map50"] == pytest.approx(0.5)


def test_padded_annotated_data_like_ground_truth():
    class Padded:  # the detect AnnotatedData layout: labels (N, M) with -1 padding
        labels = torch.tensor([[0, -1], [0, 0]])
        boxes = torch.tensor([[A, [0.0] * 4], [A, B]])
        ignore = torch.tensor([[False, False], [False, True]])

    preds = [det([A], [0.9], [0]), det([A], [0.8], [0])]
    assert coco_evaluate(Padded(), preds, ["digit"])["map"] == pytest.approx(1.0)


def test_to_coco_results_uses_xywh_and_label_plus_1():
    detections = [det([[1.0, 2.0, 4.0, 8.0]], [0.5], [2]), det([], [], [])]
    results = to_coco_results(detections, image_ids=[7, 8])
    assert results == [
        {"image_id": 7, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}
    ]


def test_bad_inputs():
    with pytest.raises(ValueError, match="no scorable object"):
        coco_evaluate([gt([], [])], [det([], [], [])], ["digit"])
    with pytest.raises(ValueError, match="one dict per image"):
        coco_evaluate([gt([A], [0])], [], ["digit"])
    with pytest.raises(ValueError, match=r"detections\[0\] has label 3"):
        coco_evaluate([gt([A], [0])], [det([A], [0.9], [3])], ["digit"])
    with pytest.raises(ValueError, match=r"ground_truth\[0\] must be a dict with a 'labels'"):
        voc_ap([{"boxes": torch.zeros(1, 4)}], [det([], [], [])], ["digit"])
    with pytest.raises(ValueError, match=r"ground_truth\[0\] must have as many boxes, labels"):
        coco_evaluate([gt([A, B], [0])], [det([], [], [])], ["digit"])


def test_voc_ap_returns_each_class_precision_recall_curve():
    gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]),
           "labels": torch.tensor([0, 0])}]
    det = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60], [20.0, 20, 30, 30]]),
            "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([0, 0, 0])}]
    result = voc_ap(gt, det, ["digit", "other"], curves=True)
    recall, precision = result["curves"]["digit"]
    # by score: hit, miss, hit -> recall 1/2, 1/2, 2/2; precision 1/1, 1/2, 2/3
    assert recall.tolist() == [0.5, 0.5, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    assert "other" not in result["curves"]  # no objects of that class: no curve
    assert "curves" not in voc_ap(gt, det, ["digit", "other"])
