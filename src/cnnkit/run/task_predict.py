"""Boxes and masks from a trained localise / segment / detect run, on images of any size.

Each image is converted to the run's channels and stretched to its input size (as the task
readers did with the training images), the network runs in batches, and the result is mapped
back onto the original image: boxes are scaled by ``(W0 / w, H0 / h)``, masks come from the
logits resized (bilinear) to ``(H0, W0)`` before the per-pixel argmax.

Example:
    >>> loaded = load_run("runs/loc")  # doctest: +SKIP
    >>> predict_task_images(loaded, [image_uint8_chw])[0]["box"]  # doctest: +SKIP
    [12.5, 8.0, 40.2, 37.9]
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.data.folder import decode_image
from cnnkit.data.open import convert_channels, resize_images
from cnnkit.run.folder import LoadedModel

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
    batch = []
    for i, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3:
            raise ValueError(f"images[{i}] must be a uint8 tensor (C, H, W), got "
                             f"{getattr(image, 'dtype', type(image).__name__)} "
                             f"{tuple(getattr(image, 'shape', ()))}")
        one = convert_channels(image.unsqueeze(0), c)  # (C0, H0, W0) -> (1, C, H0, W0)
        batch.append(resize_images(one, (h, w), resize="stretch"))
    return torch.cat(batch)  # (N, C, h, w)


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
    _, h, w = loaded.input_shape
    outputs = loaded.outputs(_to_model_size(loaded, images), batch_size=batch_size)
    sizes = [tuple(image.shape[-2:]) for image in images]
    if loaded.task == "segment":
        return [_mask(loaded, outputs[i:i + 1], size) for i, size in enumerate(sizes)]
    scales = [torch.tensor([w0 / w, h0 / h, w0 / w, h0 / h]) for h0, w0 in sizes]
    if loaded.task == "localize":
        probs = torch.softmax(outputs["logits"].float(), dim=1)  # (N, K)
        boxes = loaded.model.decode(outputs, (h, w)).float()  # (N, 4) model pixels
        best = probs.max(dim=1)
        return [{"label": loaded.class_names[int(k)], "probability": float(p),
                 "box": [round(float(v), 2) for v in box * scale]}
                for k, p, box, scale in zip(best.indices, best.values, boxes, scales)]
    found = loaded.model.postprocess(outputs)
    return [{"detections": [
        {"label": loaded.class_names[int(k)], "score": float(s),
         "box": [round(float(v), 2) for v in box * scale]}
        for box, s, k in zip(image["boxes"], image["scores"], image["labels"])]}
        for image, scale in zip(found, scales)]


def _mask(loaded: LoadedModel, logits: torch.Tensor, size: tuple[int, int]) -> dict[str, Any]:
    # (1, K, h, w) -> (1, K, H0, W0) -> (H0, W0) class indices
    full = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
    mask = full.argmax(dim=1)[0].to(torch.uint8)
    return {"mask": mask, "areas": class_areas(mask, loaded.class_names)}


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
