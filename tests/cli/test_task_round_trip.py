"""1-epoch ``cnnkit train`` -> ``evaluate`` -> ``predict`` -> ``export`` per task (issues 15, 16).

Each task's dataset is written by ``cnnkit data make`` from the built-in 8x8 digits and trained
once per module; the tests then read that run folder.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main

TASKS = ("localize", "segment", "detect")
CANVAS = {"localize": 64, "segment": 96, "detect": 96}
NUM_CLASSES = {"localize": 10, "segment": 11, "detect": 10}  # segment: + background
COMMON_KEYS = {"task", "split", "num_images", "loss", "class_names"}
EVALUATE_KEYS = {
    "localize": COMMON_KEYS | {"accuracy", "mean_iou", "iou50", "boxes_png"},
    "segment": COMMON_KEYS | {"miou", "pixel_accuracy", "per_class_iou", "iou_png", "masks_png"},
    "detect": COMMON_KEYS | {"map", "map50", "map75", "per_class_ap", "recall", "voc_map50",
                             "boxes_png", "scores_png"} | {"pr_png"},
}
# What the epoch line must name (the training pass of detection reports the loss only).
EPOCH_WORDS = {
    "localize": ["acc", "mean_iou", "iou50", "val_loss", "val_acc", "val_mean_iou", "val_iou50"],
    "segment": ["miou", "pixel_acc", "val_loss", "val_miou", "val_pixel_acc"],
    "detect": ["val_loss", "val_map", "val_map50"],
}
NUMBER = r"-?\d+\.\d+"
MAIN = {"localize": "mean_iou", "segment": "miou", "detect": "map50"}


def cli(*argv) -> tuple[int, str, str]:
    """Run ``cnnkit ARGV`` in this process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


class TaskRun:
    """The dataset folder, the trained run folder and what ``train`` printed, for one task."""

    def __init__(self, task: str, data: Path, run: Path, printed: str):
        self.task, self.data, self.run, self.printed = task, data, run, printed

    def test_images(self, n: int = 2) -> list[Path]:
        folder = self.data / "test" / ("images" if self.task == "segment" else "")
        return sorted(folder.glob("*.png"))[:n]


_BUILT: dict[str, TaskRun] = {}  # one trained run per task, for this module


def _task_run(task: str, tmp_path_factory) -> TaskRun:
    if task not in _BUILT:
        root = tmp_path_factory.mktemp(task)
        data, run = root / "data", root / "run"
        code, out, err = cli("data", "make", f"mnist-{task}", data, "--source", "builtin",
                             "--train", 32, "--val", 8, "--test", 8)
        assert code == 0, err
        code, out, err = cli("train", "--data", data, "--epochs", 1, "--out", run,
                             "--no-progress")
        assert code == 0, err
        _BUILT[task] = TaskRun(task, data, run, out)
    return _BUILT[task]


@pytest.fixture(scope="module", params=TASKS)
def task_run(request, tmp_path_factory) -> TaskRun:
    return _task_run(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def localize_run(tmp_path_factory) -> TaskRun:
    return _task_run("localize", tmp_path_factory)


def test_train_prints_the_task_metrics_and_stores_the_resolved_task(task_run):
    epoch_lines = [line for line in task_run.printed.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 1, task_run.printed
    line = epoch_lines[0]
    assert line.startswith("epoch 1/1  loss ")
    for word in EPOCH_WORDS[task_run.task]:
        assert re.search(rf"(^|  ){word} {NUMBER}(  |$)", line), (word, line)
    assert f"run folder: {task_run.run}" in task_run.printed
    config = json.loads((task_run.run / "config.json").read_text())
    assert config["task"] == task_run.task  # resolved from the data, not "auto"
    model = json.loads((task_run.run / "model.json").read_text())
    assert model["task"] == task_run.task
    assert model["architecture"]["task"] == task_run.task
    assert len(model["class_names"]) == NUM_CLASSES[task_run.task]


def _in_unit_range(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_evaluate_json_has_exactly_the_task_keys_in_range(task_run):
    code, out, err = cli("evaluate", task_run.run, "--json")
    assert code == 0, err
    report = json.loads(out)
    task = task_run.task
    # pr_png needs at least one detection (an untrained 1-epoch detector may find none)
    assert set(report) - {"pr_png"} == EVALUATE_KEYS[task] - {"pr_png"}
    assert report["task"] == task and report["split"] == "test" and report["num_images"] == 8
    assert isinstance(report["loss"], float) and report["loss"] > 0
    assert len(report["class_names"]) == NUM_CLASSES[task]
    scalars = {"localize": ("accuracy", "mean_iou", "iou50"),
               "segment": ("miou", "pixel_accuracy"),
               "detect": ("map", "map50", "map75", "recall", "voc_map50")}[task]
    for key in scalars:
        assert _in_unit_range(report[key]), (key, report[key])
    # the first images with true and predicted boxes / masks, drawn next to the run
    grid = Path(report["masks_png" if task == "segment" else "boxes_png"])
    assert grid.parent == task_run.run and grid.is_file()
    assert Image.open(grid).format == "PNG" and Image.open(grid).size[0] > 200
    if task == "segment":
        per_class = report["per_class_iou"]
        assert len(per_class) == NUM_CLASSES[task]
        assert all(v is None or _in_unit_range(v) for v in per_class)
        png = Path(report["iou_png"])
        assert png == task_run.run / "iou_test.png" and png.is_file()
        assert Image.open(png).format == "PNG"
    if task == "detect":  # "what the detector sees", and PR curves when anything was found
        assert Path(report["scores_png"]).is_file()
        assert "pr_png" not in report or Path(report["pr_png"]).is_file()
        per_class = report["per_class_ap"]
        assert list(per_class) == report["class_names"]
        assert all(v is None or _in_unit_range(v) for v in per_class.values())


def test_evaluate_text_report_and_tta_refused(task_run):
    code, out, err = cli("evaluate", task_run.run, "--split", "val")
    assert code == 0, err
    assert out.startswith(f"val: 8 images ({task_run.task})\n")
    assert re.search(rf"^  {MAIN[task_run.task]} +{NUMBER}$", out, re.MULTILINE), out
    code, out, err = cli("evaluate", task_run.run, "--tta")
    assert code == 2 and f"this run does {task_run.task}: drop --tta" in err


_BOX = rf"\[({NUMBER}), ({NUMBER}), ({NUMBER}), ({NUMBER})\]"


def _check_box(match, size: int) -> None:
    x0, y0, x1, y1 = (float(match.group(i)) for i in range(1, 5))
    assert 0 <= x0 <= x1 <= size and 0 <= y0 <= y1 <= size, match.group(0)


def test_predict_prints_per_task_lines_and_writes_the_pictures(task_run, tmp_path):
    task, images = task_run.task, task_run.test_images()
    assert len(images) == 2
    out_dir = tmp_path / "pictures"
    code, out, err = cli("predict", task_run.run, *images, "--out", out_dir)
    assert code == 0, err
    assert f"pictures written to {out_dir}" in err
    lines = out.splitlines()
    size = CANVAS[task]
    names = [str(c) for c in range(10)]
    if task == "localize":
        assert len(lines) == 2
        for line, image in zip(lines, images):
            match = re.fullmatch(rf"{re.escape(str(image))}: (\d) ({NUMBER}) box {_BOX}", line)
            assert match, line
            assert match.group(1) in names and 0 <= float(match.group(2)) <= 1
            _check_box(re.search(_BOX, line), size)
    elif task == "segment":
        assert len(lines) == 2
        for line, image in zip(lines, images):
            head, areas = line.split(": ", 1)
            assert head == str(image)
            shares = [re.fullmatch(r"(background|\d) (\d+\.\d)%", part) for part in
                      areas.split(", ")]
            assert all(shares), line
            assert sum(float(m.group(2)) for m in shares) == pytest.approx(100, abs=0.1 * 11)
    else:
        heads = [i for i, line in enumerate(lines) if not line.startswith("  ")]
        assert [lines[i].rsplit(": ", 1)[0] for i in heads] == [str(p) for p in images]
        for start, end in zip(heads, [*heads[1:], len(lines)]):
            count = int(re.fullmatch(r".*: (\d+) detections", lines[start]).group(1))
            assert end - start - 1 == count
            for line in lines[start + 1:end]:
                match = re.fullmatch(rf"  (\d) ({NUMBER}) box {_BOX}", line)
                assert match and 0 <= float(match.group(2)) <= 1, line
    for image in images:
        if task == "segment":
            mask = Image.open(out_dir / f"{image.stem}_mask.png")
            assert mask.size == (size, size) and mask.mode == "L"
            assert int(np.asarray(mask).max()) < NUM_CLASSES[task]
            overlay = Image.open(out_dir / f"{image.stem}_overlay.png")
            assert overlay.size == (size, size) and overlay.mode == "RGB"
        else:
            boxes = Image.open(out_dir / f"{image.stem}_boxes.png")
            assert boxes.size == (size, size) and boxes.mode == "RGB"
    written = sorted(p.name for p in out_dir.iterdir())
    suffixes = ["_mask.png", "_overlay.png"] if task == "segment" else ["_boxes.png"]
    assert written == sorted(f"{p.stem}{s}" for p in images for s in suffixes)


def test_predict_json_per_task(task_run):
    images = task_run.test_images()
    code, out, err = cli("predict", task_run.run, *images, "--json")
    assert code == 0, err
    if task_run.task == "detect":  # one COCO results list
        rows = json.loads(out)
        assert isinstance(rows, list)
        for row in rows:
            assert {"image_id", "category_id", "bbox", "score"} <= set(row)
            assert row["image_id"] in (0, 1) and 1 <= row["category_id"] <= 10
            x, y, w, h = row["bbox"]
            assert w >= 0 and h >= 0 and 0 <= row["score"] <= 1
        return
    items = [json.loads(line) for line in out.splitlines()]
    assert [item["file"] for item in items] == [str(p) for p in images]
    for item in items:
        if task_run.task == "localize":
            assert set(item) == {"file", "label", "probability", "box"} and len(item["box"]) == 4
        else:
            assert "mask" not in item
            assert sum(item["areas"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("flags", [["--csv"], ["--tta"]])
def test_classifier_only_predict_flags_on_a_task_run_exit_2(task_run, flags):
    code, out, err = cli("predict", task_run.run, *task_run.test_images(1), *flags)
    assert code == 2 and out == ""
    assert f"{' '.join(flags)} is for classifiers; this run does {task_run.task}" in err
    assert "Traceback" not in err


def test_predict_gives_the_same_answers_in_torch_and_onnxruntime(task_run):
    images = task_run.test_images()
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        code, out, err = cli("predict", task_run.run, *images, "--json", "--backend", backend)
        assert code == 0, err
        outputs[backend] = json.loads(out) if task_run.task == "detect" else \
            [json.loads(line) for line in out.splitlines()]
    torch_rows, ort_rows = outputs["torch"], outputs["onnxruntime"]
    assert len(torch_rows) == len(ort_rows) > 0
    if task_run.task == "detect":  # equal scores may come in either order: match each row
        for want in torch_rows:
            assert any(got["image_id"] == want["image_id"]
                       and got["category_id"] == want["category_id"]
                       and got["score"] == pytest.approx(want["score"], abs=1e-4)
                       and got["bbox"] == pytest.approx(want["bbox"], abs=0.02)
                       for got in ort_rows), want
        return
    for want, got in zip(torch_rows, ort_rows):
        assert set(want) == set(got)
        for key, value in want.items():
            if isinstance(value, (list, float)):
                assert got[key] == pytest.approx(value, abs=0.02), key
            elif isinstance(value, dict):  # segmentation class areas
                assert got[key].keys() == value.keys()
                assert list(got[key].values()) == pytest.approx(list(value.values()), abs=2e-3)
            else:
                assert got[key] == value, key


def test_export_succeeds_and_is_verified(task_run):
    code, out, err = cli("export", task_run.run)
    assert code == 0, err
    assert f"wrote {task_run.run / 'model.onnx'} (onnx, verified against PyTorch)" in out
    assert f"task {task_run.task}: outputs " in out
    assert (task_run.run / "model.onnx").stat().st_size > 0


def test_resuming_a_finished_task_run_trains_no_more(localize_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(localize_run.run, run)
    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert "epoch " not in out  # nothing left to train
    assert f"run folder: {run}" in out and "test mean_iou " in out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((run / "config.json").read_text())["task"] == "localize"


def test_segment_task_on_localisation_data_exits_2(localize_run, tmp_path):
    code, out, err = cli("train", "--data", localize_run.data, "--task", "segment", "--epochs", 1,
                         "--out", tmp_path / "bad", "--no-progress")
    assert code == 2
    assert "is localize data" in err and "task='segment' was asked" in err
    assert "--task localize" in err and "Traceback" not in err
    assert not (tmp_path / "bad" / "weights.safetensors").exists()


def test_predict_answers_in_the_pixels_of_an_image_of_another_size(task_run, tmp_path):
    """A 2x wide, 1.5x high copy is resized for the model; boxes and masks come back in its
    own pixels (localize: the original's box scaled by (2, 1.5))."""
    size = CANVAS[task_run.task]
    width, height = 2 * size, size * 3 // 2
    original = task_run.test_images(1)[0]
    image = tmp_path / "other_size.png"
    Image.open(original).resize((width, height)).save(image)
    out_dir = tmp_path / "pictures"
    code, out, err = cli("predict", task_run.run, original, image, "--out", out_dir, "--json")
    assert code == 0, err
    if task_run.task == "segment":
        mask = Image.open(out_dir / "other_size_mask.png")
        assert mask.size == (width, height)
        assert int(np.asarray(mask).max()) < NUM_CLASSES["segment"]
        assert Image.open(out_dir / "other_size_overlay.png").size == (width, height)
        return
    assert Image.open(out_dir / "other_size_boxes.png").size == (width, height)
    if task_run.task == "localize":
        first, second = (json.loads(line)["box"] for line in out.splitlines())
        scaled = np.array(first) * [2, 1.5, 2, 1.5]
        assert np.abs(np.array(second) - scaled).max() <= 0.1 * size, (first, second)
        assert 0 <= second[0] <= second[2] <= width and 0 <= second[1] <= second[3] <= height
        return
    for row in json.loads(out):  # detect: each detection's centre lies in its image
        x, y, w, h = row["bbox"]
        limit = (width, height) if row["image_id"] == 1 else (size, size)
        assert 0 <= x + w / 2 <= limit[0] and 0 <= y + h / 2 <= limit[1], row


def test_a_head_of_another_task_exits_2(tmp_path_factory, tmp_path):
    detect = _task_run("detect", tmp_path_factory)
    code, out, err = cli("train", "--data", detect.data, "--head", "fcn", "--epochs", 1,
                         "--out", tmp_path / "bad", "--no-progress")
    assert code == 2
    assert "head 'fcn' does not do detect; choose one of ['centernet', 'fcos']" in err
    assert "Traceback" not in err


def test_coco_images_kept_elsewhere_are_found_through_image_root(tmp_path):
    code, _, err = cli("data", "make", "mnist-detect", tmp_path / "coco", "--source", "builtin",
                       "--train", "8", "--val", "4", "--test", "4")
    assert code == 0, err
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for png in (tmp_path / "coco").glob("*/*.png"):  # the JSONs stay, the images move
        shutil.move(str(png), pictures / png.name)
    code, _, err = cli("train", "--data", tmp_path / "coco", "--epochs", "1", "--no-progress",
                       "--out", tmp_path / "lost")
    assert code == 2 and "mnist-detect-train-00000.png" in err  # names the missing file
    code, out, err = cli("train", "--data", tmp_path / "coco", "--image-root", pictures,
                         "--epochs", "1", "--no-progress", "--out", tmp_path / "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["image_root"] == str(pictures)
    code, out, err = cli("evaluate", tmp_path / "run", "--json")  # the run's own image root
    assert code == 0, err
    assert json.loads(out)["num_images"] == 4
