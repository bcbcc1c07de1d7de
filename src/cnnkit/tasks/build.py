"""Rebuild task models from their architecture records, and the default model per task."""
from __future__ import annotations

from torch import nn

from cnnkit.tasks.detect import Detector
from cnnkit.tasks.fcos import FCOSDetector
from cnnkit.tasks.localize import LocalizationModel
from cnnkit.tasks.segment import FCN, UNet
from cnnkit.models import build_architecture
from cnnkit.models import Sequential

HEADS = {("localize", "localization"): LocalizationModel, ("segment", "fcn"): FCN,
         ("segment", "unet"): UNet, ("detect", "centernet"): Detector,
         ("detect", "fcos"): FCOSDetector}
TASKS = ("localize", "segment", "detect")
DEFAULT_HEAD = {"localize": "localization", "segment": "unet", "detect": "centernet"}
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


def task_of(model: nn.Module) -> str:
    """The task a model was built for: its ``architecture["task"]``, else ``"classify"``."""
    arch = getattr(model, "architecture", None)
    return arch.get("task", "classify") if isinstance(arch, dict) else "classify"


def task_model(task: str, backbone: nn.Module, num_classes: int, head: str = "auto",
               **kwargs) -> nn.Module:
    """The head ``head`` of ``task`` on ``backbone`` (any model of the interface).

    Args:
        task: "localize", "segment" or "detect".
        backbone: a model with ``feature_info`` and ``forward_stages`` (its classifier unused).
        num_classes: K (segment: including the background class).
        head: "localization", "fcn", "unet", "centernet", "fcos"; "auto": :data:`DEFAULT_HEAD`.
        **kwargs: settings of the head (e.g. ``dice_weight``, ``box_weight``).

    Raises:
        ValueError: an unknown task, or a head that does not do ``task``.

    Example:
        >>> model = task_model("segment", backbone, 11, head="fcn")  # doctest: +SKIP
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS!r}, got {task!r}")
    head = DEFAULT_HEAD[task] if head == "auto" else head
    if (task, head) not in HEADS:
        heads = [h for t, h in HEADS if t == task]
        raise ValueError(f"head {head!r} does not do {task}; choose one of {heads} (or auto)")
    return HEADS[(task, head)](backbone, num_classes, **kwargs)


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
    return task_model(task, backbone, num_classes)
