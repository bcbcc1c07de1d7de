"""A task model's raw outputs -> its decoded, named outputs (what predictions and exports give).

One definition for the PyTorch predictions (``cnnkit.run.task_predict``) and the ONNX export
(``cnnkit.export.wrapper.TaskOutputs``), so both backends decode alike:

* localize: ``softmax(logits)`` and ``LocalizationModel.decode`` (pixel xyxy, clipped);
* segment: the logits and their per-pixel argmax (int64 class indices);
* detect: ``Detector.decode`` (top-D peaks, score 0 below the score threshold; NMS is a
  post-step, see ``cnnkit.tasks.nms.kept_detections``).
"""
from __future__ import annotations

import torch
from torch import nn

# The named outputs of each task, in the exported graph's order.
DECODED_OUTPUTS = {
    "localize": ("probabilities", "boxes"),
    "segment": ("logits", "mask"),
    "detect": ("boxes", "scores", "labels"),
}


def decode_outputs(task: str, network: nn.Module, output,
                   size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The decoded outputs of ``network``'s raw ``output`` on an input of ``size`` (h, w).

    Shape:
        localize ``{"probabilities": (N, K), "boxes": (N, 4) pixels}``;
        segment ``{"logits": (N, K, h, w), "mask": (N, h, w) int64}``;
        detect ``{"boxes": (N, D, 4), "scores": (N, D), "labels": (N, D) int64}``.
    """
    if task == "localize":
        return {"probabilities": torch.softmax(output["logits"], dim=1),  # (N, K)
                "boxes": network.decode(output, size)}  # (N, 4) pixels
    if task == "segment":
        return {"logits": output, "mask": output.argmax(dim=1)}  # (N, K, h, w), (N, h, w)
    if task == "detect":
        return dict(zip(DECODED_OUTPUTS["detect"], network.decode(output)))
    raise ValueError(f"decode_outputs decodes {', '.join(DECODED_OUTPUTS)}, got task {task!r}")
