"""cnnkit.tasks.objective: targets converted as each model's loss takes them, summable metrics."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnkit.tasks.build import default_for
from cnnkit.tasks.objective import (MAIN_METRIC, DetectionObjective, LocalizationObjective,
                                    SegmentationObjective, TaskMetrics, objective_for)

DIGITS = [str(d) for d in range(10)]


def _localize(seed=0):
    """A localiser on 48 x 64 (H x W) images: boxes are normalised by a W that differs from H."""
    torch.manual_seed(seed)
    model = default_for("localize", (48, 64, 1), 10)
    objective = objective_for(model, "localize", (1, 48, 64), DIGITS)
    x = torch.rand(6, 1, 48, 64)
    targets = {"labels": torch.tensor([0, 3, 9, 3, 1, 2]),
               "boxes": torch.tensor([[0.0, 0, 64, 48], [10, 5, 30, 25], [40, 20, 63, 47],
                                      [2, 30, 12, 44], [20, 10, 50, 20], [30, 0, 34, 48]])}
    return model, objective, x, targets


def _segment(seed=0):
    torch.manual_seed(seed)
    model = default_for("segment", (32, 32, 1), 3)
    objective = objective_for(model, "segment", (1, 32, 32), ["background", "a", "b"])
    x = torch.rand(4, 1, 32, 32)
    masks = torch.randint(0, 3, (4, 32, 32), dtype=torch.uint8)
    masks[0, :4] = 255  # ignored pixels
    masks[2, :, :8] = 255
    return model, objective, x, {"masks": masks}


def _detect(seed=0):
    torch.manual_seed(seed)
    model = default_for("detect", (48, 48, 1), 10)
    objective = objective_for(model, "detect", (1, 48, 48), DIGITS)
    x = torch.rand(3, 1, 48, 48)
    targets = {"labels": torch.tensor([[4, 7, -1], [-1, -1, -1], [1, 2, 3]]),
               "boxes": torch.tensor([[[2.0, 2, 20, 22], [25, 25, 40, 44], [-1, -1, -1, -1]],
                                      [[-1.0, -1, -1, -1]] * 3,
                                      [[0.0, 0, 10, 10], [12, 12, 30, 30], [30, 5, 47, 20]]]),
               "ignore": torch.tensor([[False, True, False], [False] * 3, [False] * 3])}
    return model, objective, x, targets


def test_objective_for_builds_the_task_objective_and_none_for_classify():
    model, objective, _, _ = _localize()
    assert isinstance(objective, LocalizationObjective)
    assert objective_for(model, "classify", (1, 48, 64), DIGITS) is None
    assert isinstance(objective_for(model, "segment", (1, 48, 64), DIGITS), SegmentationObjective)
    assert isinstance(objective_for(model, "detect", (1, 48, 64), DIGITS), DetectionObjective)
    assert {t: objective_for(model, t, (1, 48, 64), DIGITS).main_metric
            for t in ("localize", "segment", "detect")} == {
        "localize": "mean_iou", "segment": "miou", "detect": "map50"}
    assert MAIN_METRIC["classify"] == "accuracy"
    with pytest.raises(ValueError, match=r"task must be one of .*'count'"):
        objective_for(model, "count", (1, 48, 64), DIGITS)


def test_a_model_without_a_loss_method_is_a_clear_value_error():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ValueError, match=r"a segment model needs a loss\(output, targets\) "
                                         r"method.*got Sequential"):
        objective_for(plain, "segment", (1, 8, 8), DIGITS)


def test_localize_loss_normalises_pixel_xyxy_by_width_and_height():
    model, objective, x, targets = _localize()
    out = model(x)
    x0, y0, x1, y1 = targets["boxes"].unbind(1)
    by_hand = torch.stack([(x0 + x1) / 2 / 64, (y0 + y1) / 2 / 48,
                           (x1 - x0) / 64, (y1 - y0) / 48], 1)  # W = 64, H = 48
    expected = model.loss(out, {"labels": targets["labels"], "boxes": by_hand})["loss"]
    assert torch.allclose(objective.loss(out, targets), expected, rtol=1e-6, atol=1e-7)
    # int32 labels and float64 boxes (what a reader might give) are converted as well
    odd = {"labels": targets["labels"].int(), "boxes": targets["boxes"].double()}
    assert torch.allclose(objective.loss(out, odd), expected, rtol=1e-6, atol=1e-7)


def test_segment_loss_casts_uint8_masks_and_ignores_255():
    model, objective, x, targets = _segment()
    out = model(x)
    masks = targets["masks"].to(torch.int64)
    expected = model.loss(out, {"masks": masks})["loss"]
    assert torch.allclose(objective.loss(out, targets), expected)
    # the ignored pixels do not count: the same loss with other logits there
    changed = out.detach().clone()
    changed[0, :, :4] = torch.randn_like(changed[0, :, :4]) * 10
    changed[2, :, :, :8] = 7.0
    assert torch.allclose(objective.loss(changed, targets), objective.loss(out.detach(), targets))


def test_detect_loss_takes_the_padded_targets_as_per_image_lists():
    model, objective, x, targets = _detect()
    raw = model(x)
    by_hand = {"boxes": [targets["boxes"][0, :2], targets["boxes"][1, :0], targets["boxes"][2]],
               "labels": [torch.tensor([4, 7]), torch.tensor([], dtype=torch.int64),
                          torch.tensor([1, 2, 3])]}
    expected = model.loss(raw, by_hand)["loss"]
    assert torch.allclose(objective.loss(raw, targets), expected)
    converted = objective.model_targets(targets)
    assert [len(b) for b in converted["boxes"]] == [2, 0, 3]
    assert [lab.tolist() for lab in converted["labels"]] == [[4, 7], [], [1, 2, 3]]


def _fill(objective, model, x, targets, parts):
    """One TaskMetrics per part (index lists) of the batch, updated as the Trainer does."""
    accumulators = []
    with torch.no_grad():
        for indices in parts:
            metrics = objective.metrics()
            xs = x[indices]
            ys = {k: v[indices] for k, v in targets.items()}
            out = model(xs)
            metrics.update(objective.loss(out, ys), out, ys)
            accumulators.append(metrics)
    return accumulators


def test_localize_metrics_state_round_trip_and_halves_sum_to_the_whole():
    model, objective, x, targets = _localize()
    model.eval()
    whole, = _fill(objective, model, x, targets, [list(range(6))])
    first, second = _fill(objective, model, x, targets, [[0, 1], [2, 3, 4, 5]])
    expected = whole.compute()
    assert set(expected) == {"loss", "accuracy", "mean_iou", "iou50"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in expected.values())

    again = objective.metrics()
    again.load_state(whole.state())
    assert again.count == 6 and again.compute() == pytest.approx(expected)

    summed = first.state() + second.state()
    assert summed.dtype == torch.float64
    assert torch.allclose(summed, whole.state())
    merged = objective.metrics()
    merged.load_state(summed)
    assert merged.count == 6
    assert merged.compute() == pytest.approx(expected, rel=1e-6)  # float32 batch losses


def test_segment_metrics_state_round_trip_and_halves_sum_to_the_whole():
    model, objective, x, targets = _segment()
    model.eval()
    whole, = _fill(objective, model, x, targets, [[0, 1, 2, 3]])
    first, second = _fill(objective, model, x, targets, [[0], [1, 2, 3]])
    expected = whole.compute()
    assert set(expected) == {"loss", "miou", "pixel_accuracy", "per_class_iou"}
    summed = first.state() + second.state()
    assert torch.equal(summed[1:], whole.state()[1:])
    merged = objective.metrics()
    merged.load_state(summed)
    got = merged.compute()
    assert got["loss"] == pytest.approx(expected["loss"])
    assert got["miou"] == expected["miou"]
    assert got["per_class_iou"] == expected["per_class_iou"]


def test_segment_metrics_match_the_hand_counted_pixels():
    model, objective, x, targets = _segment()
    model.eval()
    metrics, = _fill(objective, model, x, targets, [[0, 1, 2, 3]])
    with torch.no_grad():
        pred = model(x).argmax(1)
    valid = targets["masks"] != 255
    truth = targets["masks"].long()
    assert metrics.compute()["pixel_accuracy"] == pytest.approx(
        float((pred[valid] == truth[valid]).double().mean()))
    assert metrics.count == 4


def test_detection_gathers_its_records_and_replace_inner_joins_them():
    model, objective, x, targets = _detect()
    model.eval()
    whole, = _fill(objective, model, x, targets, [[0, 1, 2]])
    first, second = _fill(objective, model, x, targets, [[0], [1, 2]])
    assert whole.gathers and first.gathers
    assert whole.state().shape == (3,)  # loss·w, w and n only: the detections are gathered
    assert len(whole.inner.ground_truth) == 3 and len(whole.inner.detections) == 3
    assert whole.inner.ground_truth[0]["labels"].tolist() == [4, 7]
    assert whole.inner.ground_truth[0]["ignore"].tolist() == [False, True]
    assert len(whole.inner.ground_truth[1]["boxes"]) == 0

    joined = objective.metrics()
    joined.load_state(first.state() + second.state())
    joined.replace_inner([first.inner, second.inner])
    expected = whole.compute()
    assert {"loss", "map", "map50", "map75", "per_class_ap", "recall"} <= set(expected)
    got = joined.compute()
    # each batch's loss is a sum over its objects divided by their number, and the halves
    # are weighted by their objects (Objective.batch_weight): the whole batch's loss again
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5) and joined.count == 3
    for key in ("map", "map50", "map75", "recall"):
        assert got[key] == pytest.approx(expected[key]), key
    assert got["per_class_ap"] == expected["per_class_ap"]


def test_detection_training_pass_tracks_the_loss_only():
    model, objective, x, targets = _detect()
    metrics = objective.metrics(training=True)
    raw = model(x)
    metrics.update(objective.loss(raw, targets), raw, targets)
    assert metrics.inner is None and not metrics.gathers
    assert list(metrics.compute()) == ["loss"]
    assert metrics.state().shape == (3,)
    # localisation and segmentation metrics are cheap: tracked on training passes too
    _, localize, _, _ = _localize()
    assert localize.metrics(training=True).inner is not None


def test_an_empty_accumulator_reports_nan_loss_and_no_metrics():
    _, objective, _, _ = _localize()
    metrics = TaskMetrics(objective)
    assert metrics.count == 0
    logs = metrics.compute()
    assert list(logs) == ["loss"] and math.isnan(logs["loss"])
