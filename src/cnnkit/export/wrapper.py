"""A self-contained model for export: raw pixels in, logits out, normalisation inside.

Exported files are used outside cnnkit (onnxruntime, C++, a phone), where nobody knows the
training set's mean and std. :class:`PreprocessedModel` folds them into the graph:

* ``input_dtype="uint8"`` (default): the input is uint8 pixels 0–255, (N, C, H, W), and the model
  computes ``((x / 255) - mean[c]) / std[c]`` before the network;
* ``input_dtype="float32"``: the input is float32 pixels on the 0–1 scale, and the model computes
  ``(x - mean[c]) / std[c]``.

Either way a classifier's output is the network's logits (N, K); apply a softmax for
probabilities. Task runs (localise, segment, detect) are wrapped in :class:`TaskOutputs`, which
adds the task's decoding to the graph and returns the named outputs of :data:`TASK_OUTPUTS`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnkit.run.folder import LoadedModel, load_run
from cnnkit.tasks.decoded import DECODED_OUTPUTS, decode_outputs

INPUT_DTYPES = ("uint8", "float32")
# The named outputs of an exported graph, per task, in the order the wrapper returns them.
TASK_OUTPUTS = {"classify": ("logits",), **DECODED_OUTPUTS}


def resolve_loaded(run_or_loaded) -> LoadedModel:
    """A :class:`LoadedModel` from a run folder path or an already loaded model.

    Raises:
        TypeError: neither a path nor a ``LoadedModel``.
        CheckpointError: the run folder cannot be loaded.
    """
    if isinstance(run_or_loaded, LoadedModel):
        return run_or_loaded
    if isinstance(run_or_loaded, (str, Path)):
        return load_run(run_or_loaded)
    raise TypeError(f"run must be a run folder path or a cnnkit LoadedModel (cnnkit.load(RUN)), "
                    f"got {type(run_or_loaded).__name__}: {run_or_loaded!r}")


def check_input_dtype(input_dtype: str) -> str:
    """Return ``input_dtype`` if it is one of :data:`INPUT_DTYPES`, else raise ValueError."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}; use "
                         "'uint8' for raw 0-255 pixels or 'float32' for 0-1 pixels")
    return input_dtype


class PreprocessedModel(nn.Module):
    """Pixels -> (optional) normalisation -> network logits.

    Args:
        loaded: the trained model with its normalisation.
        input_dtype: ``"uint8"`` (0–255) or ``"float32"`` (0–1); see the module docstring.
        fold_normalization: False: no preprocessing at all, the input must already be
            normalised float32 like the training batches (``input_dtype`` is then ignored).

    Shape:
        (N, C, H, W) pixels -> (N, K) logits.

    Example:
        >>> wrapped = PreprocessedModel(cnnkit.load("runs/digits"))  # doctest: +SKIP
        >>> wrapped(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape  # doctest: +SKIP
        torch.Size([2, 10])
    """

    def __init__(self, loaded: LoadedModel, *, input_dtype: str = "uint8",
                 fold_normalization: bool = True):
        super().__init__()
        self.network = loaded.model
        self.input_dtype = check_input_dtype(input_dtype) if fold_normalization else "float32"
        self.fold_normalization = fold_normalization
        channels = loaded.input_shape[0]
        norm = loaded.normalization
        mean = torch.tensor(norm.mean if norm is not None else (0.0,) * channels)
        std = torch.tensor(norm.std if norm is not None else (1.0,) * channels)
        # Constants of the graph, not parameters: (C,) -> (1, C, 1, 1) to broadcast over N, H, W.
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.reshape(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold_normalization:
            x = x.float()
            if self.input_dtype == "uint8":
                x = x / 255.0
            x = (x - self.mean) / self.std
        return self.network(x)


class TaskOutputs(nn.Module):
    """Pixels -> normalisation -> a task model -> its decoded outputs, all in one graph.

    The decoding is ``cnnkit.tasks.decoded.decode_outputs`` (in-graph torch ops), the one that
    ``cnnkit predict`` runs in PyTorch, so an exported file gives what it gives at the run's
    input size:

    * localize: ``softmax(logits)`` and ``LocalizationModel.decode`` (pixel xyxy, clipped);
    * segment: the logits and their per-pixel argmax (int64 class indices);
    * detect: ``Detector.decode`` (top-D heatmap peaks, score 0 below the score threshold).
      Class-aware NMS is *not* in the graph (greedy NMS is a data-dependent loop that does not
      export cleanly): drop the zero scores and apply ``cnnkit.tasks.nms.batched_nms`` at the
      model's ``nms_iou`` afterwards (the ONNX metadata's ``postprocess`` says so).

    Args:
        loaded: a task run (``loaded.task`` one of localize, segment, detect).
        input_dtype, fold_normalization: as :class:`PreprocessedModel`.

    Shape:
        (N, C, H, W) pixels ->
        localize ``(probabilities (N, K), boxes (N, 4))``;
        segment ``(logits (N, K, H, W), mask (N, H, W) int64)``;
        detect ``(boxes (N, D, 4), scores (N, D), labels (N, D) int64)``, D = max_detections.

    Raises:
        ValueError: ``loaded`` is a classifier (export it with :class:`PreprocessedModel`).

    Example:
        >>> wrapped = TaskOutputs(load_run("runs/loc"))  # doctest: +SKIP
        >>> pixels = torch.zeros(2, 1, 64, 64, dtype=torch.uint8)
        >>> probabilities, boxes = wrapped(pixels)  # doctest: +SKIP
    """

    def __init__(self, loaded: LoadedModel, *, input_dtype: str = "uint8",
                 fold_normalization: bool = True):
        super().__init__()
        if loaded.task not in TASK_OUTPUTS or loaded.task == "classify":
            raise ValueError(f"TaskOutputs wraps localize, segment or detect runs, got a run with "
                             f"task {loaded.task!r}; wrap a classifier in PreprocessedModel")
        self.preprocessed = PreprocessedModel(loaded, input_dtype=input_dtype,
                                              fold_normalization=fold_normalization)
        self.task = loaded.task
        self.size = (int(loaded.input_shape[1]), int(loaded.input_shape[2]))

    @property
    def input_dtype(self) -> str:
        return self.preprocessed.input_dtype

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        decoded = decode_outputs(self.task, self.preprocessed.network, self.preprocessed(x),
                                 self.size)
        return tuple(decoded[name] for name in DECODED_OUTPUTS[self.task])


def export_module(loaded: LoadedModel, *, input_dtype: str = "uint8",
                  fold_normalization: bool = True) -> tuple[nn.Module, tuple[str, ...]]:
    """The module to export for ``loaded``'s task (in eval mode) and its output names.

    A classifier gets :class:`PreprocessedModel` (one output, ``logits``), a task run
    :class:`TaskOutputs` (the names of :data:`TASK_OUTPUTS`).

    Raises:
        ValueError: an unknown task or a bad ``input_dtype``.
    """
    if loaded.task not in TASK_OUTPUTS:
        raise ValueError(f"the run's task {loaded.task!r} cannot be exported; expected one of "
                         f"{tuple(TASK_OUTPUTS)}")
    cls = PreprocessedModel if loaded.task == "classify" else TaskOutputs
    module = cls(loaded, input_dtype=input_dtype, fold_normalization=fold_normalization).eval()
    return module, TASK_OUTPUTS[loaded.task]


def unshadow_submodules(model: nn.Module) -> nn.Module:
    """Make every submodule reachable by attribute, for tools that look them up that way.

    ``torch.export`` finds submodules with ``getattr``; in AlexNet, VGG and DenseNet the zoo
    models' ``features(x)`` method has the name of torchvision's ``features`` submodule and
    hides it. An instance attribute wins over a class's method, so on ``model`` (an export
    copy: the user's model keeps its ``features(x)``) each hidden submodule is set as one.
    """
    for module in model.modules():
        for name, child in module.named_children():
            if callable(getattr(type(module), name, None)):
                module.__dict__[name] = child
    return model


def sample_inputs(input_shape, batch_size: int, input_dtype: str, *,
                  seed: int = 0) -> torch.Tensor:
    """Random pixels of the exported model's input type, for tracing and verification.

    Shape:
        (batch_size, C, H, W): uint8 0–255 or float32 0–1 (``input_dtype``).
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, *input_shape)
    if input_dtype == "uint8":
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return torch.rand(shape, generator=generator)


def _task_outputs_doc(loaded: LoadedModel) -> dict:
    """The ``task``, ``outputs`` (and for detection ``postprocess``) entries of the metadata."""
    c, h, w = loaded.input_shape
    if loaded.task == "localize":
        outputs = {"probabilities": "(N, K) class probabilities (softmax of the logits)",
                   "boxes": f"(N, 4) x_min, y_min, x_max, y_max in pixels of the {h}x{w} "
                            "input, max exclusive"}
        return {"task": "localize", "outputs": outputs}
    if loaded.task == "segment":
        outputs = {"logits": f"(N, K, {h}, {w}) per-pixel class logits",
                   "mask": f"(N, {h}, {w}) int64 class index per pixel (argmax of the logits)"}
        return {"task": "segment", "outputs": outputs}
    model = loaded.model
    outputs = {"boxes": f"(N, {model.max_detections}, 4) x_min, y_min, x_max, y_max in pixels "
                        f"of the {h}x{w} input, by descending score",
               "scores": f"(N, {model.max_detections}) scores, 0 below the score threshold "
                         f"{model.score_threshold}",
               "labels": f"(N, {model.max_detections}) int64 class indices"}
    postprocess = (f"NMS is not in the graph: drop detections with score 0, then apply "
                   f"class-aware non-maximum suppression at IoU {model.nms_iou} per image "
                   "(cnnkit.tasks.nms.batched_nms)")
    return {"task": "detect", "outputs": outputs, "postprocess": postprocess,
            "score_threshold": model.score_threshold, "max_detections": model.max_detections,
            "nms_iou": model.nms_iou}


def export_metadata(loaded: LoadedModel, input_dtype: str, fold_normalization: bool) -> dict:
    """What a user of the exported file needs: classes, input shape/type, normalisation.

    A task run's metadata also has ``task`` and ``outputs`` (one description per named output);
    a detector's has ``postprocess`` (the NMS step left out of the graph) and its settings.
    """
    norm = loaded.normalization
    if loaded.task != "classify":
        return {
            "class_names": list(loaded.class_names),
            "input_shape": list(loaded.input_shape),
            "input_dtype": input_dtype if fold_normalization else "float32",
            "normalization_folded": fold_normalization,
            "normalization": None if norm is None else {"mean": list(norm.mean),
                                                        "std": list(norm.std)},
            **_task_outputs_doc(loaded),
        }
    return {
        "class_names": list(loaded.class_names),
        "input_shape": list(loaded.input_shape),
        "input_dtype": input_dtype if fold_normalization else "float32",
        "normalization_folded": fold_normalization,
        "normalization": None if norm is None else {"mean": list(norm.mean), "std": list(norm.std)},
        "output": "logits (apply softmax for probabilities)",
    }
