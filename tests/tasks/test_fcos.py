"""The FCOS detector: target assignment on hand-made boxes, decoding, training, export, CLI."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import cnnkit.train.config
from cnnkit.cli import main
from cnnkit.models import Sequential
from cnnkit.tasks.boxes import box_iou
from cnnkit.tasks.build import DEFAULT_BACKBONE, build_task_model, task_model
from cnnkit.tasks.fcos import FCOSDetector

from _tiny import TinyBackbone

# TinyBackbone: strides 2, 4, 8. On 32x32 inputs level 0 (stride 4) is 8x8 and level 1
# (stride 8) 4x4: L = 64 + 16 = 80 locations, level 0's first in row-major order.
# The default size limit between them is 4·4 = 16 px of max(l, t, r, b).
LEVEL0 = 64


def make(**kwargs) -> FCOSDetector:
    torch.manual_seed(0)
    return FCOSDetector(TinyBackbone(), 3, hidden=8, depth=1, **kwargs)


def assign(model, boxes, labels):
    return model.targets_for([torch.tensor(boxes, dtype=torch.float32)],
                             [torch.tensor(labels)], [(8, 8), (4, 4)])


def positives(dense) -> set[int]:
    return set(torch.nonzero(dense["positive"][0]).flatten().tolist())


def level0(row: int, col: int) -> int:
    return row * 8 + col


def level1(row: int, col: int) -> int:
    return LEVEL0 + row * 4 + col


# ---------------------------------------------------------------------- target assignment
def test_small_box_is_positive_at_the_fine_locations_inside_it():
    model = make(center_radius=None)
    dense = assign(model, [[0.0, 0.0, 8.0, 8.0]], [2])
    # centres (2, 2), (6, 2), (2, 6), (6, 6); stride 8's (4, 4) is inside but m = 4 <= 16
    assert positives(dense) == {level0(0, 0), level0(0, 1), level0(1, 0), level0(1, 1)}
    assert (dense["labels"][0, sorted(positives(dense))] == 2).all()
    assert (dense["labels"][0, ~dense["positive"][0]] == -1).all()
    # at (2, 2): l = t = 2, r = b = 6 -> c* = sqrt(1/3 · 1/3)
    assert dense["centerness"][0, level0(0, 0)].item() == pytest.approx(1 / 3)
    assert torch.equal(dense["boxes"][0, level0(1, 1)], torch.tensor([0.0, 0.0, 8.0, 8.0]))


def test_large_box_goes_to_the_coarse_level():
    model = make(center_radius=None)
    dense = assign(model, [[0.0, 0.0, 32.0, 32.0]], [0])
    # every stride-4 centre is >= 18 px from a side (m > 16); every stride-8 one qualifies
    assert positives(dense) == set(range(LEVEL0, LEVEL0 + 16))


def test_size_limits_move_the_boundary():
    model = make(center_radius=None, size_limits=[40.0])
    dense = assign(model, [[0.0, 0.0, 32.0, 32.0]], [0])
    assert positives(dense) == set(range(LEVEL0))  # now m <= 40 everywhere: all at stride 4


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_location_in_two_boxes_takes_the_smaller(order):
    model = make(center_radius=None)
    boxes = [[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 12.0, 12.0]]
    dense = assign(model, [boxes[i] for i in order], [order[0], order[1]])
    labels = dense["labels"][0]
    # label k is box k's; (2, 2) is in both -> the 8x8 box; (10, 10) only in the 12x12 one
    assert labels[level0(0, 0)] == 0 and labels[level0(1, 1)] == 0
    assert labels[level0(2, 2)] == 1 and labels[level0(0, 2)] == 1
    assert torch.equal(dense["boxes"][0, level0(0, 0)], torch.tensor(boxes[0]))


def test_center_sampling_keeps_the_locations_near_the_centre():
    model = make(center_radius=1.5)
    dense = assign(model, [[0.0, 0.0, 24.0, 24.0]], [1])
    # stride 4: centre 12 ± 6 -> x, y in {10, 14} (m = 14 <= 16)
    fine = {level0(r, c) for r in (2, 3) for c in (2, 3)}
    # stride 8: centre 12 ± 12 -> x, y in {4, 12, 20}; (12, 12) has m = 12, not in (16, inf]
    coarse = {level1(r, c) for r in range(3) for c in range(3)} - {level1(1, 1)}
    assert positives(dense) == fine | coarse


def test_image_without_boxes_is_all_background():
    model = make()
    dense = model.targets_for([torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.int64)],
                              [(8, 8), (4, 4)])
    assert not dense["positive"].any() and (dense["labels"] == -1).all()
    raw = model(torch.randn(1, 1, 32, 32))
    loss = model.loss(raw, {"boxes": [torch.zeros(0, 4)],
                            "labels": [torch.zeros(0, dtype=torch.int64)]})
    assert torch.isfinite(loss["loss"]) and loss["giou"] == 0


# ---------------------------------------------------------------------- decoding
def unflatten(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    """(N, C, L) -> one (N, C, h_i, w_i) map per level."""
    sizes = [h * w for h, w in shapes]
    return [part.reshape(*part.shape[:2], h, w)  # (N, C, h*w) -> (N, C, h, w)
            for part, (h, w) in zip(flat.split(sizes, dim=2), shapes)]


def test_decode_of_encoded_targets_gives_the_boxes_back():
    model = make()
    shapes = [(8, 8), (4, 4)]
    truth = torch.tensor([[2.0, 3.0, 11.0, 13.0], [8.0, 4.0, 31.0, 30.0]])
    dense = model.targets_for([truth], [torch.tensor([1, 2])], shapes)
    positive = dense["positive"][0]  # (L,)
    centres, _, _ = model.points(shapes)
    x, y = centres[:, 0], centres[:, 1]
    b = dense["boxes"][0]
    ltrb = torch.stack([x - b[:, 0], y - b[:, 1], b[:, 2] - x, b[:, 3] - y])  # (4, L)
    ltrb = torch.where(positive, ltrb, 1.0)[None]  # (1, 4, L)
    logits = torch.full((1, 3, len(positive)), -10.0)
    logits[0, dense["labels"][0][positive], torch.nonzero(positive).flatten()] = 10.0
    centerness = torch.where(positive, 10.0, -10.0)[None, None]  # (1, 1, L)
    raw = {}
    for kind, flat in (("logits", logits), ("ltrb", ltrb), ("centerness", centerness)):
        for i, level in enumerate(unflatten(flat, shapes)):
            raw[f"{kind}{i}"] = level
    boxes, scores, labels = model.decode(raw, max_detections=80)
    assert boxes.shape == (1, 80, 4) and scores.shape == labels.shape == (1, 80)
    assert int((scores > 0).sum()) == int(positive.sum())
    found = model.postprocess(raw)[0]
    order = found["labels"].argsort()
    assert found["labels"][order].tolist() == [1, 2]
    torch.testing.assert_close(found["boxes"][order], truth)
    assert model.score_maps(raw).shape == (1, 3, 8, 8)


# ---------------------------------------------------------------------- training
def scenes():
    """Two 32x32 images with bright rectangles, and their boxes."""
    boxes = [torch.tensor([[2.0, 2.0, 12.0, 14.0]]),
             torch.tensor([[4.0, 16.0, 12.0, 26.0], [10.0, 2.0, 31.0, 30.0]])]
    labels = [torch.tensor([1]), torch.tensor([0, 2])]
    x = torch.zeros(2, 1, 32, 32)
    for i, image_boxes in enumerate(boxes):
        for k, (x0, y0, x1, y1) in enumerate(image_boxes.int().tolist()):
            x[i, 0, y0:y1, x0:x1] = 1.0 + labels[i][k]
    return x, {"boxes": boxes, "labels": labels}


def test_every_parameter_gets_a_gradient():
    model = make()
    x, targets = scenes()
    model.loss(model(x), targets)["loss"].backward()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_loss_decreases_and_the_boxes_are_found():
    model = make()
    x, targets = scenes()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(50):
        loss = model.loss(model(x), targets)["loss"]
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    with torch.no_grad():
        found = model.postprocess(model(x))
    for image, truth_boxes, truth_labels in zip(found, targets["boxes"], targets["labels"]):
        for box, label in zip(truth_boxes, truth_labels):
            same = image["labels"] == label
            assert same.any(), f"no detection of class {int(label)}"
            assert box_iou(box[None], image["boxes"][same]).max() > 0.5


# ---------------------------------------------------------------------- export, rebuild
class Decoded(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.decode(self.model(x))


def test_onnx_export_of_decode_matches_onnxruntime(tmp_path):
    model = make().eval()
    path = tmp_path / "fcos.onnx"
    torch.onnx.export(Decoded(model), (torch.randn(2, 1, 32, 32),), str(path),
                      input_names=["x"], output_names=["boxes", "scores", "labels"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        x = torch.randn(n, 1, 32, 32)
        got = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            want = Decoded(model)(x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-4)


def test_architecture_round_trip():
    torch.manual_seed(0)
    backbone = Sequential.from_spec(DEFAULT_BACKBONE, input_shape=(32, 32, 1))
    model = task_model("detect", backbone, 10, head="fcos", center_radius=None).eval()
    arch = json.loads(json.dumps(model.architecture))
    assert arch["head"] == "fcos" and arch["kwargs"]["center_radius"] is None
    again = build_task_model(arch).eval()
    again.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        a, b = model(x), again(x)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_levels_take_the_deepest_stage_at_or_below_each_stride():
    model = FCOSDetector(TinyBackbone(), 3, strides=(5, 16))  # stages at strides 2, 4, 8
    assert model.strides == (4, 8) and model.stride == 4 and model.size_limits == (16.0,)
    assert model.settings["strides"] == [5, 16]
    assert FCOSDetector(TinyBackbone(), 3, strides=(8, 16)).strides == (8,)


@pytest.mark.parametrize("kwargs,message", [
    ({"strides": (1, 4)}, r"no stage at stride <= 1"),
    ({"strides": (8, 4)}, "increasing"),
    ({"size_limits": [16.0, 32.0]}, "size_limits must be 1"),
    ({"center_radius": 0.0}, "center_radius must be > 0"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FCOSDetector(TinyBackbone(), 3, **kwargs)


# ---------------------------------------------------------------------- the CLI
def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.skipif("fcos" not in cnnkit.train.config.HEADS,
                    reason="cnnkit.train.config.HEADS does not list 'fcos' yet")
def test_cli_train_then_evaluate(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    code, _, err = cli("data", "make", "mnist-detect", data, "--source", "builtin",
                       "--train", 16, "--val", 4, "--test", 4)
    assert code == 0, err
    code, _, err = cli("train", "--data", data, "--task", "detect", "--head", "fcos",
                       "--epochs", 1, "--batch-size", 8, "--out", run, "--no-progress")
    assert code == 0, err
    assert json.loads((run / "model.json").read_text())["architecture"]["head"] == "fcos"
    code, out, err = cli("evaluate", run, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["task"] == "detect" and 0.0 <= report["map50"] <= 1.0
