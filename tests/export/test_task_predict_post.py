"""The post-step of ``predict_task_images`` (cnnkit.run.task_predict): the whole batch's NMS at
once, the boxes rounded in NumPy, the class areas of a whole batch of masks in one scatter-add
and the masks-only graph outputs give exactly the answers of the image-by-image way."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit import run as rf
from cnnkit.export import use_backend
from cnnkit.data.open import convert_channels
from cnnkit.run.task_predict import (_decoded_in_batches, _needed_outputs, _rounded,
                                     _to_model_size, class_areas, decoded_outputs,
                                     predict_task_images)
from cnnkit.tasks.nms import batched_nms

from _task_runs import write_task_run  # tests/_task_runs.py


def test_rounded_gives_pythons_round_for_float32_values():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.uniform(-500, 5000, 1_000_000),  # box coordinates of any image size
        np.arange(-4000, 40000) / 8,  # exact halves in binary: x.125, x.375, ... (ties to even)
        np.arange(0, 100000) / 200,  # the float32 neighbours of the decimal halves x.xx5
    ]).astype(np.float32)
    got = _rounded(torch.from_numpy(values).view(-1, 4))
    assert np.asarray(got).shape == (len(values) // 4, 4)
    assert [v for row in got for v in row] == [round(v, 2) for v in values.tolist()]
    with pytest.raises(TypeError, match="float32"):
        _rounded(torch.zeros(2, 4, dtype=torch.float64))


def _images():
    """uint8 (1, H0, W0) images of several sizes, so every image has its own scale."""
    g = torch.Generator().manual_seed(5)
    sizes = [(32, 32), (48, 40), (20, 64), (32, 32), (97, 31), (33, 33)] * 4
    return [torch.randint(0, 256, (1, h, w), dtype=torch.uint8, generator=g) for h, w in sizes]


def _reference_detections(loaded, images):
    """The image-by-image post-step: drop the padding, batched_nms, scale, round(v, 2)."""
    _, h, w = loaded.input_shape
    outputs = _decoded_in_batches(loaded, _to_model_size(loaded, images), 64)
    answers = []
    for i, image in enumerate(images):
        h0, w0 = image.shape[-2:]
        boxes, scores, labels = (outputs[k][i] for k in ("boxes", "scores", "labels"))
        real = scores > 0
        boxes, scores, labels = boxes[real].float(), scores[real].float(), labels[real]
        order = batched_nms(boxes, scores, labels, loaded.model.nms_iou)
        scale = torch.tensor([w0 / w, h0 / h, w0 / w, h0 / h])
        answers.append({"detections": [
            {"label": loaded.class_names[k], "score": s, "box": [round(v, 2) for v in box]}
            for box, s, k in zip((boxes[order] * scale).tolist(), scores[order].tolist(),
                                 labels[order].tolist())]})
    return answers


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_detections_are_the_image_by_image_answers(tmp_path, backend):
    folder = write_task_run(tmp_path / "run", "detect")
    model = rf.load_run(folder).model
    with torch.no_grad():  # random weights give ~0 px boxes; 8 cells wide, neighbours overlap
        model.size[-1].bias.fill_(8.0)
    rf.save_weights(model, folder / rf.WEIGHTS_FILE)
    loaded = use_backend(rf.load_run(folder), backend, cache_dir=tmp_path / "cache")
    images = _images()
    got = predict_task_images(loaded, images, batch_size=64)
    want = _reference_detections(loaded, images)
    assert got == want  # the same labels, scores and boxes, in the same order
    found = sum(len(a["detections"]) for a in got)
    real = sum(int((_decoded_in_batches(loaded, _to_model_size(loaded, [im]), 1)["scores"] > 0)
                   .sum()) for im in images)
    assert 0 < found < real  # detections were found and NMS really dropped some
    for answer in got:
        scores = [d["score"] for d in answer["detections"]]
        assert scores == sorted(scores, reverse=True)


def test_localize_boxes_are_rounded_like_python(tmp_path):
    loaded = rf.load_run(write_task_run(tmp_path / "run", "localize"))
    images = _images()
    _, h, w = loaded.input_shape
    outputs = _decoded_in_batches(loaded, _to_model_size(loaded, images), 64)
    got = predict_task_images(loaded, images)
    for i, (image, answer) in enumerate(zip(images, got)):
        h0, w0 = image.shape[-2:]
        box = outputs["boxes"][i].float() * torch.tensor([w0 / w, h0 / h, w0 / w, h0 / h])
        assert answer["box"] == [round(v, 2) for v in box.tolist()]


def _reference_masks(loaded, images):
    """Image by image, from every decoded output: the mask at the image's size (the logits
    resized when it differs from the run's) and its class areas."""
    answers = []
    for image in images:
        outputs = _decoded_in_batches(loaded, _to_model_size(loaded, [image]), 1)
        size = tuple(image.shape[-2:])
        if size == tuple(loaded.input_shape[1:]):
            mask = outputs["mask"][0].to(torch.uint8)
        else:
            full = torch.nn.functional.interpolate(outputs["logits"][:1].float(), size=size,
                                                   mode="bilinear", align_corners=False)
            mask = full.argmax(dim=1)[0].to(torch.uint8)
        answers.append({"mask": mask, "areas": class_areas(mask, loaded.class_names)})
    return answers


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("mixed_sizes", [False, True])
def test_segment_masks_and_areas_are_the_image_by_image_answers(tmp_path, backend,
                                                                mixed_sizes):
    loaded = use_backend(rf.load_run(write_task_run(tmp_path / "run", "segment")), backend,
                         cache_dir=tmp_path / "cache")
    images = _images() if mixed_sizes else [im for im in _images() if im.shape[-2:] == (32, 32)]
    assert _needed_outputs(loaded, [tuple(im.shape[-2:]) for im in images]) == (
        None if mixed_sizes else ("mask",))  # at the run's size only the masks are read
    got = predict_task_images(loaded, images, batch_size=5)
    want = _reference_masks(loaded, images)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g["mask"].dtype == torch.uint8 and torch.equal(g["mask"], w["mask"])
        assert g["areas"] == pytest.approx(w["areas"])
        assert sum(g["areas"].values()) == pytest.approx(1.0)
    assert any(len(g["areas"]) > 1 for g in got)  # several classes: the counts are per class


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_decoded_outputs_keeps_the_outputs_asked_for(tmp_path, backend):
    loaded = use_backend(rf.load_run(write_task_run(tmp_path / "run", "segment")), backend,
                         cache_dir=tmp_path / "cache")
    x = loaded._prepare(_to_model_size(loaded, _images()[:3]))
    with torch.inference_mode():
        every = decoded_outputs(loaded, x)
        masks = decoded_outputs(loaded, x, ("mask",))
        assert set(every) == {"logits", "mask"} and list(masks) == ["mask"]
        assert torch.equal(masks["mask"], every["mask"])
        with pytest.raises(ValueError, match="no output 'boxes'.*logits"):
            decoded_outputs(loaded, x, ("boxes",))


def test_images_at_the_run_size_are_stacked_as_they_are(tmp_path):
    loaded = rf.load_run(write_task_run(tmp_path / "run", "segment"))
    g = torch.Generator().manual_seed(2)
    same = [torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8, generator=g) for _ in range(4)]
    assert torch.equal(_to_model_size(loaded, same), torch.stack(same))
    rgb = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)  # converted
    batch = _to_model_size(loaded, [*same, rgb])
    assert batch.shape == (5, 1, 32, 32) and torch.equal(batch[:4], torch.stack(same))
    assert torch.equal(batch[4:], convert_channels(rgb.unsqueeze(0), 1))
    with pytest.raises(ValueError, match=r"images\[1\] must be a uint8 tensor"):
        _to_model_size(loaded, [same[0], same[1].float()])
