"""Evaluate a trained run on a dataset: ``cnnkit evaluate``.

Starts from :func:`cnnkit.run.load_run`, so it uses the run's own class names, input size and
normalisation. Classifying image files (``expand_inputs``, ``predict_files``) is in
:mod:`cnnkit.run.predict`, re-exported here under its old name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cnnkit.data.open import open_data
from cnnkit.data.open_annotated import open_annotated
from cnnkit.errors import DataError
from cnnkit.run.folder import LoadedModel
from cnnkit.run.predict import IMAGE_SUFFIXES, expand_inputs, predict_files
from cnnkit.run.task_predict import predict_task_images
from cnnkit.tasks.classification import ClassReport, confusion_matrix, format_confusion
from cnnkit.tasks.coco_eval import voc_ap
from cnnkit.tasks.objective import objective_for


@dataclass(frozen=True)
class EvaluationReport:
    """Accuracy, loss (cross-entropy of the predicted probabilities) and per-class results."""

    split: str
    num_images: int
    accuracy: float
    loss: float
    confusion: torch.Tensor
    classes: ClassReport
    class_names: list[str]
    tta: bool = False  # averaged with the horizontally flipped images

    def to_text(self) -> str:
        how = ", with flip TTA" if self.tta else ""
        return "\n\n".join([
            f"{self.split}: {self.num_images} images{how}, accuracy {self.accuracy:.4f}, "
            f"loss {self.loss:.4f}",
            self.classes.to_table(self.class_names),
            format_confusion(self.confusion, self.class_names),
        ])

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "num_images": self.num_images, "accuracy": self.accuracy,
                "loss": self.loss, "confusion_matrix": self.confusion.tolist(),
                "class_names": self.class_names, "precision": self.classes.precision,
                "recall": self.classes.recall, "f1": self.classes.f1,
                "support": self.classes.support, "tta": self.tta}


def evaluate_images(loaded: LoadedModel, images: torch.Tensor, labels: torch.Tensor, *,
                    split: str = "test", batch_size: int = 256,
                    tta: bool | None = None) -> EvaluationReport:
    """Evaluate ``loaded`` on uint8 images (N, C, H, W) with int64 labels (N,).

    ``tta`` None: as the run was trained to be tested (its config's ``tta``), so the accuracy
    is the one ``cnnkit train`` reported.

    Raises:
        ValueError: no images, or shapes that do not fit the model.
    """
    if len(images) == 0:
        raise ValueError(f"the {split} split has no images to evaluate")
    tta = loaded.trained_with_tta if tta is None else tta
    probs = loaded.predict_proba(images, batch_size=batch_size, tta=tta)  # (N, K)
    labels = labels.long()
    nll = -torch.log(probs.gather(1, labels.unsqueeze(1)).clamp_min(1e-12))  # (N,) -> (N, 1)
    pred = probs.argmax(dim=1)
    cm = confusion_matrix(pred, labels, len(loaded.class_names))
    return EvaluationReport(split, len(labels), (pred == labels).float().mean().item(),
                            nll.mean().item(), cm, ClassReport.from_confusion(cm),
                            list(loaded.class_names), tta)


def split_of(splits, data: str, split: str, loaded: LoadedModel):
    """The ``split`` part of ``splits`` (DataSplits or AnnotatedSplits), with the run's classes.

    Raises:
        DataError: no such split, or other class names than the run's.
    """
    parts = splits.parts()
    if split not in parts:
        raise DataError(f"--data {data!r} has no {split!r} split; choose --split from "
                        f"{', '.join(parts)}")
    part = parts[split]
    if list(part.class_names) != list(loaded.class_names):
        raise DataError(f"--data {data!r} has classes {part.class_names!r} but the model was "
                        f"trained on {loaded.class_names!r}; use data with the same classes")
    return part


def evaluate_run(loaded: LoadedModel, data: str, *, split: str = "test",
                 data_dir: str | None = None, batch_size: int = 256,
                 tta: bool | None = None) -> EvaluationReport:
    """Open ``data`` at the run's input size and evaluate one split.

    The run's ``val_split`` and ``seed`` are reused, so ``split="val"`` is the same held-out
    part that training validated on.

    Raises:
        DataError: the data's classes differ from the run's, or the split does not exist.
    """
    c, h, w = loaded.input_shape
    splits = open_data(data, data_dir=data_dir, size=(h, w), channels=c,
                       val_split=loaded.config.get("val_split", 0.0),
                       seed=loaded.config.get("seed", 0))
    part = split_of(splits, data, split, loaded)
    return evaluate_images(loaded, part.images, part.labels, split=split,
                           batch_size=batch_size, tta=tta)


@dataclass(frozen=True)
class TaskEvaluationReport:
    """The metrics of a localise / segment / detect run on one split.

    ``metrics`` holds the task's keys: ``accuracy``, ``mean_iou``, ``iou50`` (localize);
    ``miou``, ``pixel_accuracy``, ``per_class_iou`` (segment, a list with None for a class in
    neither truth nor prediction); ``map``, ``map50``, ``map75``, ``per_class_ap``, ``recall``
    (detect, pycocotools) and ``voc_map50`` (Pascal VOC AP@0.5, all-point); and ``loss``.
    """

    task: str
    split: str
    num_images: int
    metrics: dict[str, Any]
    class_names: list[str]
    sample: dict[str, Any] | None = None  # the first images with truth and prediction


    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "split": self.split, "num_images": self.num_images,
                **self.metrics, "class_names": self.class_names}

    def to_text(self) -> str:
        head = f"{self.split}: {self.num_images} images ({self.task})"
        lines = [head]
        for key, value in self.metrics.items():
            if isinstance(value, float):
                lines.append(f"  {key:<15} {value:.4f}")
        per_class = self.metrics.get("per_class_iou") or self.metrics.get("per_class_ap")
        if per_class is not None:
            values = (per_class.values() if isinstance(per_class, dict) else per_class)
            name = "IoU" if "per_class_iou" in self.metrics else "AP"
            lines.append(f"\n  {'class':<15} {name}")
            for cls, value in zip(self.class_names, values):
                shown = "absent" if value is None else f"{value:.4f}"
                lines.append(f"  {cls:<15} {shown}")
        return "\n".join(lines)


def evaluate_task_run(loaded: LoadedModel, data: str, *, split: str = "test",
                      data_dir: str | None = None, batch_size: int = 64,
                      image_root: str | None = None) -> TaskEvaluationReport:
    """Open ``data`` (localise/segment/detect) at the run's input size and evaluate one split.

    The run's ``val_split`` and ``seed`` are reused (``split="val"`` is training's own
    validation part; generated scenes are the same for the same seed).

    Raises:
        DataError: the data's task or classes differ from the run's, or no such split.
    """
    c, h, w = loaded.input_shape
    splits = open_annotated(data, task=loaded.task, data_dir=data_dir, size=(h, w), channels=c,
                            val_split=loaded.config.get("val_split", 0.1),
                            seed=loaded.config.get("seed", 0), image_root=image_root)
    part = split_of(splits, data, split, loaded)
    objective = objective_for(loaded.model, loaded.task, loaded.input_shape, loaded.class_names)
    metrics = objective.metrics()
    targets = part.targets()
    with torch.inference_mode():
        for start in range(0, len(part), batch_size):
            batch = {k: v[start:start + batch_size] for k, v in targets.items()}
            out = loaded.outputs(part.images[start:start + batch_size], batch_size=batch_size)
            metrics.update(objective.loss(out, batch), out, batch)
    results = metrics.compute()
    sample = _sample(loaded, part, min(16, len(part)))
    if loaded.task == "detect":
        voc = voc_ap(metrics.inner.ground_truth, metrics.inner.detections, loaded.class_names,
                     curves=True)
        results["voc_map50"] = voc["map50"]
        sample["pr_curves"], sample["voc_ap"] = voc["curves"], voc["per_class_ap"]
        # "what the detector sees": the head's per-class score maps for the first image
        raw = loaded.outputs(part.images[:1])
        sample["score_maps"] = loaded.model.score_maps(raw)[0].float()  # (K, h, w)
    return TaskEvaluationReport(loaded.task, split, len(part), results, list(loaded.class_names),
                                sample)


def _sample(loaded: LoadedModel, part, n: int) -> dict[str, Any]:
    """The first ``n`` images of ``part`` with their truth and the run's predictions, in the
    layouts of ``cnnkit.viz.tasks`` (boxes (n, 4) / per-image lists; masks (n, H, W))."""
    images = part.images[:n]
    found = predict_task_images(loaded, list(images))
    sample: dict[str, Any] = {"images": images}
    if loaded.task == "segment":
        sample.update(true=part.masks[:n], pred=torch.stack([f["mask"] for f in found]))
        return sample
    index = {name: k for k, name in enumerate(loaded.class_names)}
    if loaded.task == "localize":
        sample.update(true_boxes=part.boxes[:n], true_labels=part.labels[:n],
                      pred_boxes=torch.tensor([f["box"] for f in found]),
                      pred_labels=torch.tensor([index[f["label"]] for f in found]),
                      pred_scores=torch.tensor([f["probability"] for f in found]))
        return sample
    sample.update(true_boxes=part.boxes[:n], true_labels=part.labels[:n],
                  pred_boxes=[torch.tensor([d["box"] for d in f["detections"]]).reshape(-1, 4)
                              for f in found],
                  pred_labels=[torch.tensor([index[d["label"]] for d in f["detections"]],
                                            dtype=torch.int64) for f in found],
                  pred_scores=[torch.tensor([d["score"] for d in f["detections"]])
                               for f in found])
    return sample


__all__ = ["IMAGE_SUFFIXES", "EvaluationReport", "TaskEvaluationReport", "evaluate_images",
           "evaluate_run", "evaluate_task_run", "expand_inputs", "predict_files"]
