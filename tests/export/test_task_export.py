"""ONNX export of localise / segment / detect runs: decoded named outputs, equal to PyTorch."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import onnx
import pytest
import torch

from cnnkit import cli
from cnnkit import run as rf
from cnnkit.export import (ExportError, export_onnx, export_torchscript, onnx_session,
                           read_onnx_metadata, use_backend, verify_onnx)
from cnnkit.export.runtime import OnnxTaskForward
from cnnkit.export.verify import check_detections, check_mask_agreement
from cnnkit.export.wrapper import TASK_OUTPUTS
from cnnkit.run.task_predict import predict_task_images
from cnnkit.tasks.nms import batched_nms

from _task_runs import CLASSES, write_task_run  # tests/_task_runs.py


@pytest.fixture(scope="module", params=["localize", "segment", "detect"])
def exported(request, tmp_path_factory):
    """(task, run folder, .onnx file, what ``cnnkit export RUN --out FILE`` printed)."""
    task = request.param
    run = write_task_run(tmp_path_factory.mktemp(task) / "run", task)
    path = run / "exported.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["export", str(run), "--out", str(path)]) == 0
    return task, run, path, printed.getvalue()


def _pixels(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def test_outputs_are_named_by_task_with_a_dynamic_batch(exported):
    task, _, path, printed = exported
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == list(TASK_OUTPUTS[task])
    assert all(o.type.tensor_type.shape.dim[0].dim_param for o in graph.output)
    assert f"wrote {path} (onnx, verified against PyTorch)" in printed
    assert f"task {task}: outputs {', '.join(TASK_OUTPUTS[task])}" in printed


@pytest.mark.parametrize("n", [1, 3])
def test_onnxruntime_equals_torch(exported, n):
    task, run, path, _ = exported
    loaded = rf.load_run(run)
    pixels = _pixels(n, seed=10 + n)
    actual = dict(zip(TASK_OUTPUTS[task],
                      onnx_session(path).run(None, {"images": pixels.numpy()})))
    raw = loaded.outputs(pixels)  # the run folder's own normalisation, outside the graph
    if task == "localize":
        np.testing.assert_allclose(actual["probabilities"],
                                   torch.softmax(raw["logits"], 1).numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(actual["boxes"], loaded.model.decode(raw, (32, 32)).numpy(),
                                   rtol=1e-4, atol=1e-3)
        assert actual["probabilities"].shape == (n, 3) and actual["boxes"].shape == (n, 4)
    elif task == "segment":
        np.testing.assert_allclose(actual["logits"], raw.numpy(), rtol=1e-4, atol=1e-4)
        assert actual["mask"].dtype == np.int64 and actual["mask"].shape == (n, 32, 32)
        assert np.mean(actual["mask"] == raw.argmax(1).numpy()) >= 0.999
    else:
        expected = [t.numpy() for t in loaded.model.decode(raw)]
        check_detections(expected, [actual["boxes"], actual["scores"], actual["labels"]],
                         score_threshold=loaded.model.score_threshold, what="test")
        assert actual["boxes"].shape == (n, loaded.model.max_detections, 4)
        assert actual["labels"].dtype == np.int64


def test_the_documented_post_step_gives_cnnkit_predicts_answer(exported):
    task, run, path, _ = exported
    loaded = rf.load_run(run)
    pixels = _pixels(2, seed=3)
    outputs = dict(zip(TASK_OUTPUTS[task],
                       onnx_session(path).run(None, {"images": pixels.numpy()})))
    expected = predict_task_images(loaded, list(pixels))  # images at the model's size
    for i, want in enumerate(expected):
        if task == "localize":
            k = int(outputs["probabilities"][i].argmax())
            assert CLASSES[task][k] == want["label"]
            np.testing.assert_allclose(outputs["boxes"][i], want["box"], atol=0.02)
        elif task == "segment":
            assert np.mean(outputs["mask"][i] == want["mask"].numpy()) >= 0.999
        else:
            boxes, scores, labels = (torch.from_numpy(outputs[k][i])
                                     for k in ("boxes", "scores", "labels"))
            kept = scores > 0
            boxes, scores, labels = boxes[kept], scores[kept], labels[kept]
            order = batched_nms(boxes, scores, labels, loaded.model.nms_iou)
            got = [(CLASSES[task][int(labels[j])], float(scores[j])) for j in order]
            assert [d["label"] for d in want["detections"]] == [g[0] for g in got]
            np.testing.assert_allclose([d["score"] for d in want["detections"]],
                                       [g[1] for g in got], atol=1e-5)
            np.testing.assert_allclose(
                np.array([d["box"] for d in want["detections"]]).reshape(-1, 4),
                boxes[order].numpy().reshape(-1, 4), atol=0.02)


def test_metadata_describes_the_task_outputs(exported):
    task, _, path, printed = exported
    meta = read_onnx_metadata(path)
    assert meta["task"] == task and list(meta["outputs"]) == list(TASK_OUTPUTS[task])
    assert meta["class_names"] == CLASSES[task] and meta["input_shape"] == [1, 32, 32]
    assert meta["normalization_folded"] is True and meta["input_dtype"] == "uint8"
    if task == "detect":
        assert "NMS is not in the graph" in meta["postprocess"] and meta["nms_iou"] == 0.5
        assert "note: NMS is not in the graph" in printed
    else:
        assert "postprocess" not in meta and "note:" not in printed


def test_verify_fails_when_the_task_weights_changed(exported):
    task, run, path, _ = exported
    loaded = rf.load_run(run)
    assert verify_onnx(path, loaded, batch_sizes=(1, 3)) < 1e-3
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(torch.randn_like(p))
    with pytest.raises(ExportError, match="not faithful|differ"):
        verify_onnx(path, loaded, batch_sizes=(2,))


def test_classifier_export_keeps_its_single_logits_output(run_dir, tmp_path):
    path = export_onnx(run_dir, tmp_path / "classifier.onnx")
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["logits"]
    meta = read_onnx_metadata(path)
    assert "task" not in meta and meta["output"] == "logits (apply softmax for probabilities)"


def test_mask_agreement_and_detection_checks_fail_on_real_differences():
    mask = np.zeros((1, 40, 50), dtype=np.int64)
    assert check_mask_agreement(mask, mask, what="m") == 1.0
    other = mask.copy()
    other[0, :2] = 1  # 100 of 2000 pixels
    with pytest.raises(ExportError, match="95.0000% of the mask pixels"):
        check_mask_agreement(mask, other, what="m")
    boxes = np.array([[[0, 0, 4, 4], [5, 5, 9, 9], [1, 1, 2, 2]]], dtype=np.float32)
    scores = np.array([[0.9, 0.5, 0.10002]], dtype=np.float32)
    labels = np.array([[1, 0, 2]])
    # A score at the threshold that the other runtime zeroed is a rounding tie, not an error.
    near = scores.copy()
    near[0, 2] = 0
    check_detections((boxes, scores, labels), (boxes, near, labels), score_threshold=0.1,
                     what="d")
    swapped = labels.copy()
    swapped[0, 0] = 2
    with pytest.raises(ExportError, match="labels differ"):
        check_detections((boxes, scores, labels), (boxes, scores, swapped), score_threshold=0.1,
                         what="d")
    moved = boxes.copy()
    moved[0, 1] += 1
    with pytest.raises(ExportError, match="boxes"):
        check_detections((boxes, scores, labels), (moved, scores, labels), score_threshold=0.1,
                         what="d")
    low = scores.copy()
    low[0, 0] = 0  # a confident detection lost
    with pytest.raises(ExportError, match="scores differ"):
        check_detections((boxes, scores, labels), (boxes, low, labels), score_threshold=0.1,
                         what="d")


def test_task_runs_predict_through_onnxruntime_with_torchs_answers(tmp_path):
    run = write_task_run(tmp_path / "run", "segment")
    loaded = use_backend(rf.load_run(run), "auto", cache_dir=run / ".cache")
    assert loaded.backend == "onnxruntime" and isinstance(loaded.forward, OnnxTaskForward)
    assert len(list((run / ".cache").glob("onnx-*.onnx"))) == 1
    images = [_pixels(1, seed=4)[0], torch.from_numpy(np.random.default_rng(4).integers(
        0, 256, (1, 41, 23), dtype=np.uint8))]
    eager = predict_task_images(rf.load_run(run), images)
    for got, want in zip(predict_task_images(loaded, images), eager):
        assert got["mask"].shape == want["mask"].shape
        assert (got["mask"] == want["mask"]).float().mean() >= 0.999
    assert use_backend(rf.load_run(run), "onnxruntime").backend == "onnxruntime"
    with pytest.raises(ValueError, match="format='onnx'"):
        export_torchscript(run, tmp_path / "m.pt")
