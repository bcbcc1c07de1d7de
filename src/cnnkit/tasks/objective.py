"""What the training loop needs to know about a task: its loss, its metrics, its main metric.

The :class:`~cnnkit.train.trainer.Trainer` is the same loop for every task; an
:class:`Objective` is the part that differs. It turns the loader's targets (the dicts of
docs/tasks-contract.md §2, pixel boxes and uint8 masks) into what the model's ``loss`` takes,
and decodes the model's output into predictions for the task's metrics:

============  =================================  ===================================  ==========
task          model output                       metrics (``compute()``)              main
============  =================================  ===================================  ==========
localize      ``{"logits" (N, K), "boxes" (N,4)}``  accuracy, mean_iou, iou50           mean_iou
segment       logits ``(N, K, H, W)``             miou, pixel_accuracy, per_class_iou  miou
detect        raw head maps (dict)                map, map50, map75, per_class_ap,     map50
                                                  recall (pycocotools)
============  =================================  ===================================  ==========

Every metrics object also reports ``loss`` (the mean of the batches' losses, weighted by
what each averages over: images, valid pixels or objects). Classification keeps its own fast path (:class:`MetricAccumulator` in
``cnnkit.tasks.classification``); :func:`objective_for` returns None for it.

Example:
    >>> objective = objective_for(model, "localize", (1, 64, 64), class_names)  # doctest: +SKIP
    >>> loss = objective.loss(model(x), targets)  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cnnkit.tasks.boxes import xyxy_to_cxcywh
from cnnkit.tasks.coco_eval import coco_evaluate
from cnnkit.tasks.metrics import LocalizationMetrics, SegmentationMetrics

TASKS = ("classify", "localize", "segment", "detect")
MAIN_METRIC = {"classify": "accuracy", "localize": "mean_iou", "segment": "miou",
               "detect": "map50"}


def floats(output):
    """``output`` (a tensor or a dict of tensors) in float32, e.g. after bf16 autocast."""
    if isinstance(output, Tensor):
        return output.float()
    return {key: value.float() for key, value in output.items()}


def detach(output):
    """``output`` (a tensor or a dict of tensors) detached from the graph."""
    if isinstance(output, Tensor):
        return output.detach()
    return {key: value.detach() for key, value in output.items()}


class _LossMean:
    """The running mean of batch losses, each weighted by what it averages over (kept on the
    device: no host sync per batch)."""

    def __init__(self) -> None:
        self.loss_sum: Tensor | None = None
        self.weight = 0.0

    def add(self, loss: Tensor, weight: float) -> None:
        value = loss.detach().double() * weight
        self.loss_sum = value if self.loss_sum is None else self.loss_sum + value
        self.weight += weight

    def mean(self) -> float:
        return float(self.loss_sum) / self.weight if self.weight else float("nan")


class TaskMetrics:
    """Loss + a task metric accumulator, with the Trainer's ``update(loss, output, targets)``.

    ``state()`` is a float64 tensor of sums (``[loss·w, w, n, *inner state]``, ``w`` what the
    loss averages over: :meth:`Objective.batch_weight`), so summing the
    states of several processes and ``load_state`` gives the metrics over all of them.
    Detection keeps its detections instead (pycocotools needs them all): ``gathers`` is True
    and ``cnnkit.train.distributed.reduce_metrics`` gathers them from every process.
    """

    def __init__(self, objective: Objective, *, track: bool = True) -> None:
        self.objective = objective
        self.track = track  # False: loss only (the training pass of a costly metric)
        self._loss = _LossMean()
        self.count = 0  # images seen
        self.inner = objective.new_inner() if track else None

    def update(self, loss: Tensor, output, targets) -> None:
        self._loss.add(loss, self.objective.batch_weight(targets))
        self.count += self.objective.batch_size(targets)
        if self.inner is not None:
            self.objective.add_to(self.inner, output, targets)

    def compute(self) -> dict[str, Any]:
        """``{"loss", <the task's metrics>}``; with ``track=False`` only the loss."""
        logs: dict[str, Any] = {"loss": self._loss.mean()}
        if self.inner is not None and self.count:
            logs.update(self.objective.compute(self.inner))
        return logs

    @property
    def gathers(self) -> bool:
        """True when the metric keeps records (detections) that are gathered, not summed."""
        return self.inner is not None and hasattr(self.inner, "extend")

    def state(self) -> Tensor:
        """The sums ``[loss·weight, weight, images, *inner state]`` as float64 (a gathering
        metric adds no inner state)."""
        device = self._loss.loss_sum.device if self._loss.loss_sum is not None else "cpu"
        head = torch.tensor([0.0 if self._loss.loss_sum is None else float(self._loss.loss_sum),
                             self._loss.weight, float(self.count)], dtype=torch.float64)
        parts = [head]
        if self.inner is not None and not self.gathers:
            parts.append(self.inner.state().flatten().double())  # (K, K) confusion -> (K*K,)
        return torch.cat(parts).to(device)

    def load_state(self, t: Tensor) -> None:
        """Replace the sums with ``t`` (e.g. the all-reduced sum of every process' state())."""
        t = t.double().cpu()
        self._loss.loss_sum, self._loss.weight, self.count = t[0], float(t[1]), int(t[2].item())
        if self.inner is not None and not self.gathers:
            like = self.inner.state()
            values = t[3:].reshape(like.shape)  # (K*K,) -> (K, K) for segmentation's confusion
            if not like.dtype.is_floating_point:
                values = values.round()  # counts carried as float64 (exact below 2**53)
            self.inner.load_state(values.to(like.dtype))

    def replace_inner(self, parts: list) -> None:
        """Keep the records of every process (``parts``: one gathered inner per process)."""
        inner = self.objective.new_inner()
        for part in parts:
            inner.extend(part)
        self.inner = inner


class Objective:
    """The task-specific part of training: targets -> loss, outputs -> metrics.

    Args:
        model: the task model (it has ``loss(output, targets) -> {"loss", ...}``).
        task: one of ``localize``, ``segment``, ``detect``.
        input_shape: (C, H, W) of the training images (boxes are normalised by H and W).
        class_names: one name per class.

    Raises:
        ValueError: an unknown task, or a model without a ``loss`` method.
    """

    main_metric = "loss"
    track_training = True

    def __init__(self, model: nn.Module, task: str, input_shape: Sequence[int],
                 class_names: Sequence[str]):
        if not callable(getattr(model, "loss", None)):
            raise ValueError(f"a {task} model needs a loss(output, targets) method (the task "
                             f"models of cnnkit.tasks have one), got {type(model).__name__}")
        self.model = model
        self.task = task
        self.input_shape = tuple(int(d) for d in input_shape)
        self.class_names = [str(c) for c in class_names]

    def batch_size(self, targets) -> int:
        return len(next(iter(targets.values())))

    def batch_weight(self, targets) -> float:
        """What the loss averages over in this batch (images here; valid pixels, objects):
        gradient accumulation weights each micro-batch by its share of it."""
        return float(self.batch_size(targets))

    def loss(self, output, targets) -> Tensor:
        """The model's total loss on one batch (float32 outputs, targets as the model takes them)."""
        return self.model.loss(floats(output), self.model_targets(targets))["loss"]

    def model_targets(self, targets):
        return targets

    def metrics(self, *, training: bool = False) -> TaskMetrics:
        """A fresh accumulator (on training passes only the loss when the metric is costly)."""
        return TaskMetrics(self, track=self.track_training or not training)

    def new_inner(self):
        raise NotImplementedError

    def add_to(self, inner, output, targets) -> None:
        raise NotImplementedError

    def compute(self, inner) -> dict[str, Any]:
        return inner.compute()


class LocalizationObjective(Objective):
    """Class + one box: targets' pixel xyxy boxes become the model's normalised (cx, cy, w, h)."""

    main_metric = "mean_iou"

    def _scale(self, like: Tensor) -> Tensor:
        _, h, w = self.input_shape
        return like.new_tensor([w, h, w, h], dtype=torch.float32)

    def model_targets(self, targets):
        boxes = targets["boxes"].float() / self._scale(targets["boxes"])
        return {"labels": targets["labels"].long(), "boxes": xyxy_to_cxcywh(boxes)}

    def new_inner(self) -> LocalizationMetrics:
        return LocalizationMetrics()

    def add_to(self, inner: LocalizationMetrics, output, targets) -> None:
        output = floats(output)
        boxes = self.model.decode(output, self.input_shape[1:])
        inner.update(output["logits"].argmax(1), boxes, targets["labels"], targets["boxes"])


class SegmentationObjective(Objective):
    """A class per pixel: uint8 masks (255 = ignore) become int64 for the cross-entropy."""

    main_metric = "miou"

    def model_targets(self, targets):
        return {"masks": targets["masks"].long()}

    def batch_weight(self, targets) -> float:
        # the cross-entropy is the mean over the pixels that are not 255 (ignore)
        return float((targets["masks"] != 255).sum())

    def new_inner(self) -> SegmentationMetrics:
        return SegmentationMetrics(len(self.class_names))

    def add_to(self, inner: SegmentationMetrics, output, targets) -> None:
        inner.update(output.detach().argmax(1), targets["masks"])


class _Detections:
    """Every image's ground truth and detections, for pycocotools at the end."""

    def __init__(self) -> None:
        self.ground_truth: list[dict[str, Tensor]] = []
        self.detections: list[dict[str, Tensor]] = []

    def extend(self, other: _Detections) -> None:
        self.ground_truth += other.ground_truth
        self.detections += other.detections


class DetectionObjective(Objective):
    """Many boxes: padded targets (label -1 = none) become per-image lists; COCO mAP via
    pycocotools on the validation pass (the training pass reports the loss only)."""

    main_metric = "map50"
    track_training = False

    def batch_weight(self, targets) -> float:
        # the heat-map, size and offset losses are sums divided by the number of objects
        return float(max(1, int((targets["labels"] >= 0).sum())))

    def model_targets(self, targets):
        present = targets["labels"] >= 0  # (N, M)
        return {"boxes": [b[keep] for b, keep in zip(targets["boxes"], present)],
                "labels": [lab[keep] for lab, keep in zip(targets["labels"], present)]}

    def new_inner(self) -> _Detections:
        return _Detections()

    def add_to(self, inner: _Detections, output, targets) -> None:
        found = self.model.postprocess(floats(output))
        ignore = targets.get("ignore")
        for i, (labels, boxes) in enumerate(zip(targets["labels"], targets["boxes"])):
            keep = labels >= 0
            truth = {"boxes": boxes[keep].cpu(), "labels": labels[keep].cpu()}
            if ignore is not None:
                truth["ignore"] = ignore[i][keep].cpu()
            inner.ground_truth.append(truth)
            inner.detections.append({k: v.detach().cpu() for k, v in found[i].items()})

    def compute(self, inner: _Detections) -> dict[str, Any]:
        return coco_evaluate(inner.ground_truth, inner.detections, self.class_names)


OBJECTIVES = {"localize": LocalizationObjective, "segment": SegmentationObjective,
              "detect": DetectionObjective}


def objective_for(model: nn.Module, task: str, input_shape: Sequence[int],
                  class_names: Sequence[str]) -> Objective | None:
    """The :class:`Objective` of ``task`` for ``model`` (None for ``classify``).

    Raises:
        ValueError: an unknown task.

    Example:
        >>> objective_for(model, "classify", (1, 28, 28), names) is None  # doctest: +SKIP
        True
    """
    if task == "classify":
        return None
    if task not in OBJECTIVES:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return OBJECTIVES[task](model, task, input_shape, class_names)
