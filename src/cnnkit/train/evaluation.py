"""Evaluate a trained run on a dataset, and classify image files: ``cnnkit evaluate`` / ``predict``.

Both start from :func:`cnnkit.train.run_folder.load_run`, so they use the run's own class names,
input size and normalisation.
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.metrics import ClassReport, confusion_matrix, format_confusion
from cnnkit.train.run_folder import LoadedModel

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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

    def to_text(self) -> str:
        return "\n\n".join([
            f"{self.split}: {self.num_images} images, accuracy {self.accuracy:.4f}, "
            f"loss {self.loss:.4f}",
            self.classes.to_table(self.class_names),
            format_confusion(self.confusion, self.class_names),
        ])

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "num_images": self.num_images, "accuracy": self.accuracy,
                "loss": self.loss, "confusion_matrix": self.confusion.tolist(),
                "class_names": self.class_names, "precision": self.classes.precision,
                "recall": self.classes.recall, "f1": self.classes.f1,
                "support": self.classes.support}


def evaluate_images(loaded: LoadedModel, images: torch.Tensor, labels: torch.Tensor, *,
                    split: str = "test", batch_size: int = 256,
                    tta: bool = False) -> EvaluationReport:
    """Evaluate ``loaded`` on uint8 images (N, C, H, W) with int64 labels (N,).

    Raises:
        ValueError: no images, or shapes that do not fit the model.
    """
    if len(images) == 0:
        raise ValueError(f"the {split} split has no images to evaluate")
    probs = loaded.predict_proba(images, batch_size=batch_size, tta=tta)  # (N, K)
    labels = labels.long()
    nll = -torch.log(probs.gather(1, labels.unsqueeze(1)).clamp_min(1e-12))  # (N,) -> (N, 1)
    pred = probs.argmax(dim=1)
    cm = confusion_matrix(pred, labels, len(loaded.class_names))
    return EvaluationReport(split, len(labels), (pred == labels).float().mean().item(),
                            nll.mean().item(), cm, ClassReport.from_confusion(cm),
                            list(loaded.class_names))


def evaluate_run(loaded: LoadedModel, data: str, *, split: str = "test",
                 data_dir: str | None = None, batch_size: int = 256,
                 tta: bool = False) -> EvaluationReport:
    """Open ``data`` at the run's input size and evaluate one split.

    The run's ``val_split`` and ``seed`` are reused, so ``split="val"`` is the same held-out
    part that training validated on.

    Raises:
        DataError: the data's classes differ from the run's, or the split does not exist.
    """
    from cnnkit.data.open import open_data

    c, h, w = loaded.input_shape
    splits = open_data(data, data_dir=data_dir, size=(h, w), channels=c,
                       val_split=loaded.config.get("val_split", 0.0),
                       seed=loaded.config.get("seed", 0))
    parts = splits.parts()
    if split not in parts:
        raise DataError(f"--data {data!r} has no {split!r} split; choose --split from "
                        f"{', '.join(parts)}")
    part = parts[split]
    if list(part.class_names) != list(loaded.class_names):
        raise DataError(f"--data {data!r} has classes {part.class_names!r} but the model was "
                        f"trained on {loaded.class_names!r}; evaluate on data with the same "
                        "classes")
    return evaluate_images(loaded, part.images, part.labels, split=split,
                           batch_size=batch_size, tta=tta)


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Image files from file names, folders (searched recursively) and glob patterns, sorted.

    Raises:
        FileNotFoundError: an input matches no image file.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True)
                           if Path(p).is_file())
        if not found:
            raise FileNotFoundError(f"no image files found for {item!r}; give a file, a folder "
                                    f"or a glob such as 'photos/*.png'")
        files.extend(found)
    return files


def predict_files(loaded: LoadedModel, files: Sequence[Path], *, top: int = 3,
                  batch_size: int = 256, tta: bool = False) -> list[dict[str, Any]]:
    """Classify image files in batches: ``[{"file", "predictions": [{"class", "probability"}]}]``.

    Raises:
        DataError: a file that cannot be decoded (the message names it).
    """
    from cnnkit.data.folder import decode_image

    c, h, w = loaded.input_shape
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images = np.stack([decode_image(f, channels=c, size=(h, w)) for f in chunk])  # (B, C, H, W)
        top_k = loaded.predict_top(torch.from_numpy(images), k=top, tta=tta)
        for f, preds in zip(chunk, top_k):
            results.append({"file": str(f), "predictions": [
                {"class": name, "probability": p} for name, p in preds]})
    return results
