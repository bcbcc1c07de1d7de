"""Rebuild task models from their architecture records, and the default model per task."""
from __future__ import annotations

from torch import nn

from cnnkit.tasks.detect import Detector
from cnnkit.tasks.localize import LocalizationModel
from cnnkit.tasks.segment import FCN, UNet
from cnnkit.models import build_architecture
from cnnkit.models import Sequential

HEADS = {("localize", "localization"): LocalizationModel, ("segment", "fcn"): FCN,
         ("segment", "unet"): UNet, ("detect", "centernet"): Detector}
TASKS = ("localize", "segment", "detect")
# BN + stride-2 stages (strides 2, 4, 8): small, fast on a 2-core CPU for images <= 128 px.
DEFAULT_BACKBONE = ("conv(16,3,stride=2,padding=same) bn relu conv(32,3,stride=2,padding=same) "
                    "bn relu conv(64,3,stride=2,padding=same) bn relu")


def build_task_model(arch: dict) -> nn.Module:
    """Rebuild a task model from its ``architecture`` dict (tasks contract §4).

    Raises:
        ValueError: not a task record, or an unknown task/head pair.

    Example:
        >>> again = build_task_model(model.architecture)  # doctest: +SKIP
    """
    if not isinstance(arch, dict) or arch.get("type") != "task":
        raise ValueError(f"arch must be a task architecture dict with type='task', got {arch!r}")
    key = (arch.get("task"), arch.get("head"))
    if key not in HEADS:
        raise ValueError(f"unknown task/head {key!r}; known: {sorted(HEADS)}")
    backbone = build_architecture(arch["backbone"])
    return HEADS[key](backbone, arch["num_classes"], **arch.get("kwargs", {}))


def default_for(task: str, input_shape, num_classes: int) -> nn.Module:
    """The default model of ``task`` for small images: the spec backbone + UNet/CenterNet/box head.

    Args:
        task: "localize", "segment" or "detect".
        input_shape: H×W×C as ``cnnkit.Sequential`` takes it (``"64x64x1"``, ``(64, 64, 1)``).
        num_classes: K (for segment: including the background class).

    Raises:
        ValueError: an unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS!r}, got {task!r}")
    backbone = Sequential.from_spec(DEFAULT_BACKBONE, input_shape=input_shape)
    if task == "localize":
        return LocalizationModel(backbone, num_classes)
    if task == "segment":
        return UNet(backbone, num_classes)
    return Detector(backbone, num_classes, stride=4)
