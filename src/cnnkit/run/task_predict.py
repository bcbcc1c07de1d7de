"""Boxes and masks from a trained localise / segment / detect run, on images of any size.

Each image is converted to the run's channels and stretched to its input size (as the task
readers did with the training images), the network and its decoding run in batches
(:func:`decoded_outputs`: the named outputs of the run's ONNX export, computed by onnxruntime
when ``loaded.forward`` has a ``decoded`` method, see ``cnnkit.export.runtime``, else by
PyTorch), and one post-step maps the result back onto the original image: detections go
through class-aware NMS, boxes are scaled by ``(W0 / w, H0 / h)``, masks come from the logits
resized (bilinear) to ``(H0, W0)`` before the per-pixel argmax (an image at the run's size
takes the decoded mask as it is).

Example:
    >>> loaded = load_run("runs/loc")  # doctest: +SKIP
    >>> predict_task_images(loaded, [image_uint8_chw])[0]["box"]  # doctest: +SKIP
    [12.5, 8.0, 40.2, 37.9]
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.data.folder import decode_image
from cnnkit.data.open import convert_channels, resize_images
from cnnkit.run.folder import LoadedModel
from cnnkit.run.threads import torch_threads_beside
from cnnkit.tasks.decoded import decode_outputs
from cnnkit.tasks.nms import padded_nms

TASKS = ("localize", "segment", "detect")


def class_areas(mask: torch.Tensor, class_names: Sequence[str], *,
                ignore_index: int = 255) -> dict[str, float]:
    """The share of the (non-ignored) pixels of each class present in ``mask``.

    Shape:
        mask (H, W) class indices -> {name: fraction in (0, 1]}, fractions summing to 1.

    Example:
        >>> class_areas(torch.tensor([[0, 1], [1, 1]]), ["background", "digit"])
        {'background': 0.25, 'digit': 0.75}
    """
    values = mask.reshape(-1).long()  # (H, W) -> (H*W,)
    values = values[values != ignore_index]
    if values.numel() == 0:
        return {}
    counts = torch.bincount(values, minlength=len(class_names))
    total = float(counts.sum())
    return {class_names[k]: float(counts[k]) / total for k in counts.nonzero().flatten().tolist()}


def _check_task(loaded: LoadedModel) -> None:
    if loaded.task not in TASKS:
        raise ValueError(f"the run's model does {loaded.task!r}, not one of {TASKS}; use "
                         "LoadedModel.predict / cnnkit.run.predict.predict_files for classifiers")


def _to_model_size(loaded: LoadedModel, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """uint8 images of any sizes -> one uint8 batch ``(N, C, h, w)`` at the run's input size."""
    c, h, w = loaded.input_shape
    for i, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3:
            raise ValueError(f"images[{i}] must be a uint8 tensor (C, H, W), got "
                             f"{getattr(image, 'dtype', type(image).__name__)} "
                             f"{tuple(getattr(image, 'shape', ()))}")
    if all(tuple(image.shape) == (c, h, w) for image in images):
        return torch.stack(list(images))  # N x (C, h, w) -> (N, C, h, w): nothing to convert
    batch = []
    for image in images:
        one = convert_channels(image.unsqueeze(0), c)  # (C0, H0, W0) -> (1, C, H0, W0)
        if tuple(one.shape[-2:]) != (h, w):  # (1, C, H0, W0) -> (1, C, h, w)
            one = resize_images(one, (h, w), resize="stretch")
        batch.append(one)
    return torch.cat(batch)  # (N, C, h, w)


def decoded_outputs(loaded: LoadedModel, x: torch.Tensor,
                    names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """The network and its decoding on one normalised batch: the run's exported outputs.

    The same named outputs as the task's ONNX export (``cnnkit.export.wrapper.TaskOutputs``):
    from onnxruntime when ``loaded.forward`` has a ``decoded`` method (the onnxruntime backend,
    ``cnnkit.export.runtime.OnnxTaskForward``), else from the task model's own decoding in
    PyTorch. Everything before (resize, normalisation) and after (the post-step of
    :func:`predict_task_images`) is shared by both. ``names`` keeps only those outputs
    (onnxruntime then copies out nothing else); None keeps all.

    Shape:
        x (N, C, h, w) normalised ->
        localize ``{"probabilities": (N, K), "boxes": (N, 4) pixels of the h x w input}``;
        segment ``{"logits": (N, K, h, w), "mask": (N, h, w) int64}``;
        detect ``{"boxes": (N, D, 4), "scores": (N, D) (0 below the threshold),
        "labels": (N, D) int64}``, D = max_detections.
    """
    decoded = getattr(loaded.forward, "decoded", None)
    if decoded is not None:
        return decoded(x, names)
    outputs = decode_outputs(loaded.task, loaded.model, loaded.model(x),
                             tuple(loaded.input_shape[1:]))
    if names is None:
        return outputs
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ValueError(f"a {loaded.task} run has no output {missing[0]!r}; its outputs are "
                         f"{list(outputs)}")
    return {name: outputs[name] for name in names}


def _decoded_in_batches(loaded: LoadedModel, pixels: torch.Tensor, batch_size: int,
                        names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """:func:`decoded_outputs` of uint8 ``pixels`` (N, C, h, w), ``batch_size`` at a time."""
    parts = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            # (B, C, h, w) uint8 -> normalised float, as LoadedModel.outputs prepares a batch
            x = loaded._prepare(pixels[start:start + batch_size])
            parts.append(decoded_outputs(loaded, x, names))
    if len(parts) == 1:
        return parts[0]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def predict_task_images(loaded: LoadedModel, images: Sequence[torch.Tensor], *,
                        batch_size: int = 64) -> list[dict[str, Any]]:
    """Predict boxes or masks for uint8 images ``(C, H0, W0)`` of any sizes.

    Returns one dict per image, in the original image's pixels (xyxy, max exclusive):

    - localize: ``{"label", "probability", "box": [x_min, y_min, x_max, y_max]}``;
    - segment: ``{"mask": uint8 (H0, W0) class indices, "areas": {class name: share}}``;
    - detect: ``{"detections": [{"label", "score", "box"}, ...]}`` sorted by score.

    Raises:
        ValueError: a classification run, or images that are not uint8 ``(C, H, W)``.
    """
    _check_task(loaded)
    if not images:
        return []
    outside = getattr(loaded.forward, "decoded", None) is not None  # onnxruntime decodes
    # One PyTorch thread beside onnxruntime, for the resize and normalisation before the graph
    # and the post-step after it: the post-step's ops on every thread left PyTorch's OpenMP
    # workers spinning into the next call's graph (bench/inference.py: segmentation predict at
    # batch 32: 0.85x bare onnxruntime before, 1.06x after).
    sizes = [tuple(image.shape[-2:]) for image in images]
    with torch_threads_beside(outside):
        outputs = _decoded_in_batches(loaded, _to_model_size(loaded, images), batch_size,
                                      _needed_outputs(loaded, sizes))
        return _answers(loaded, outputs, sizes)


def _needed_outputs(loaded: LoadedModel, sizes: list[tuple[int, int]]) -> tuple[str, ...] | None:
    """The decoded outputs the post-step reads (None: all of them).

    A segmentation batch whose images all have the run's size answers with the decoded masks
    as they are; only an image of another size needs the logits (resized, then argmax).
    """
    if loaded.task == "segment" and all(size == tuple(loaded.input_shape[1:]) for size in sizes):
        return ("mask",)
    return None


def _answers(loaded: LoadedModel, outputs: dict[str, torch.Tensor],
             sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The post-step of :func:`predict_task_images`: decoded outputs -> one answer per image."""
    _, h, w = loaded.input_shape
    if loaded.task == "segment":
        return _masks(loaded, outputs, sizes)
    scales = torch.tensor([[w0 / w, h0 / h, w0 / w, h0 / h] for h0, w0 in sizes])  # (N, 4)
    if loaded.task == "localize":
        best = outputs["probabilities"].float().max(dim=1)  # (N, K) -> (N,)
        boxes = outputs["boxes"].float()  # (N, 4) model pixels
        boxes = _rounded(boxes * scales)  # (N, 4) in each image's own pixels
        return [{"label": loaded.class_names[k], "probability": p, "box": box}
                for k, p, box in zip(best.indices.tolist(), best.values.tolist(), boxes)]
    return _detections(loaded, outputs, scales)


def _detections(loaded: LoadedModel, outputs: dict[str, torch.Tensor],
                scales: torch.Tensor) -> list[dict[str, Any]]:
    """Per image: its detections after class-aware NMS, in its own pixels, best first.

    The whole batch goes through :func:`padded_nms` and ``.tolist()`` once (per image, NMS
    and the tensor-to-list steps cost more than onnxruntime's graph: bench/inference.py); the
    gathers by rank and the scaling run in NumPy, whose calls cost a third of torch's on these
    small arrays (one image's post-step: 150 -> 100 µs, 2-core AMD EPYC).

    Shape:
        boxes (N, D, 4), scores (N, D), labels (N, D), scales (N, 4) -> N dicts.
    """
    boxes, scores, labels = (outputs["boxes"].float().cpu(), outputs["scores"].float().cpu(),
                             outputs["labels"].cpu())
    order, kept = padded_nms(boxes, scores, labels, loaded.model.nms_iou)  # (N, D) each
    order = order.numpy()
    rows = np.arange(len(order))[:, None]  # (N, 1): a[rows, order] gathers by rank
    boxes = boxes.numpy()[rows, order] * scales.numpy()[:, None, :]  # (N, D, 4) float32
    names = loaded.class_names
    return [{"detections": [{"label": names[k], "score": s, "box": box}
                            for box, s, k, keep in zip(*image) if keep]}
            for image in zip(_rounded(boxes), scores.numpy()[rows, order].tolist(),
                             labels.numpy()[rows, order].tolist(), kept.tolist())]


def _rounded(values: torch.Tensor | np.ndarray) -> list:
    """float32 ``values`` rounded to 2 decimals as nested lists: the same floats as Python's
    ``round(v, 2)`` on each, without a Python call per number (``round`` alone took 9.5 ms of a
    batch of 256 images x 20 boxes).

    NumPy rounds as ``rint(v * 100) / 100``; for a float32 ``v`` the product is exact in float64
    (24 + 7 bits < 53), rint rounds half to even as ``round`` does, and the division
    returns the float nearest to the decimal, which is what ``round`` returns
    (tests/export/test_task_predict_post.py checks a million values and the exact halves).
    """
    if isinstance(values, torch.Tensor):
        values = values.numpy()
    if values.dtype != np.float32:
        raise TypeError(f"_rounded needs float32 values (exact in float64 times 100), got "
                        f"{values.dtype}")
    return np.round(values.astype(np.float64), 2).tolist()


def _masks(loaded: LoadedModel, outputs: dict[str, torch.Tensor],
           sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Per image: its mask in its own pixels and the share of each class."""
    names = loaded.class_names
    classes = outputs["mask"]  # (N, h, w) class indices at the model's size (int64: argmax)
    decoded = classes.to(torch.uint8)
    n, k = len(sizes), len(names)
    # The class areas of every decoded mask in one scatter-add of ones at each pixel's class,
    # from the int64 indices as they come (a per-image bincount cost a third of predict's
    # post-step on a batch of 256; one bincount of indices shifted by i*K, 3.0 ms there, this
    # 2.2 ms, AMD EPYC 2 cores).
    flat = classes.reshape(n, -1).long()  # (N, h*w)
    ones = torch.ones((1, 1), dtype=torch.int64).expand_as(flat)
    counts = torch.zeros((n, k), dtype=torch.int64).scatter_add_(1, flat, ones).tolist()  # (N, K)
    total = flat.shape[1]
    results = []
    model_size = tuple(decoded.shape[-2:])
    for i, (size, mask) in enumerate(zip(sizes, decoded.unbind(0))):
        if size == model_size:  # the decoded mask is already the answer
            areas = {names[c]: count / total for c, count in enumerate(counts[i]) if count}
            results.append({"mask": mask, "areas": areas})
            continue
        # (1, K, h, w) -> (1, K, H0, W0) -> (H0, W0) class indices
        full = F.interpolate(outputs["logits"][i:i + 1].float(), size=size, mode="bilinear",
                             align_corners=False)
        mask = full.argmax(dim=1)[0].to(torch.uint8)
        results.append({"mask": mask, "areas": class_areas(mask, names)})
    return results


def predict_task_files(loaded: LoadedModel, files: Sequence[Path], *,
                       batch_size: int = 64) -> list[dict[str, Any]]:
    """:func:`predict_task_images` on image files (each at its own size), with ``"file"``.

    Raises:
        DataError: a file that cannot be decoded (the message names it).
    """
    _check_task(loaded)
    c = loaded.input_shape[0]
    results = []
    for start in range(0, len(files), batch_size):
        chunk = list(files[start:start + batch_size])
        images = [torch.from_numpy(decode_image(f, channels=c)) for f in chunk]  # (C, H0, W0)
        for f, result in zip(chunk, predict_task_images(loaded, images, batch_size=batch_size)):
            results.append({"file": str(f), **result})
    return results
