"""Single-stage detection, FCOS-style ("Fully Convolutional One-Stage", Tian et al. 2019).

A small feature pyramid (FPN neck) over 2-3 backbone stages, picked by their ``feature_info``
strides, feeds one head shared by every level. At each location ``p = (x, y)`` of level ``i``
(stride ``s_i``, ``x = (col + 0.5)·s_i``, ``y = (row + 0.5)·s_i``) the head predicts

* K class logits (sigmoid; the last conv's bias starts at ``-log((1 - π) / π)``, π = 0.01),
* the distances ``(l, t, r, b) = s_i · exp(a_i · u)`` from ``p`` to the box's four sides (``u``
  the raw output, ``a_i`` a learnt scale per level), so the box is
  ``(x - l, y - t, x + r, y + b)``,
* a centerness logit, trained towards
  ``c* = sqrt(min(l*, r*) / max(l*, r*) · min(t*, b*) / max(t*, b*))``.

Training targets (all locations × boxes at once, a loop over images only): a location is
positive for a box when it lies inside the box's centre region (the box clipped to
``centre ± center_radius·s_i``, FCOS's "center sampling"; the whole box with
``center_radius=None``) and the box's ``m = max(l*, t*, r*, b*)`` is in the level's range
``(limit_{i-1}, limit_i]`` (``limit_{-1} = 0``, the last level unbounded). A location that
qualifies for several boxes takes the smallest (by area). Loss, with P the positives:
``focal(cls) / |P| + reg_weight · Σ_P c*·(1 - GIoU) / Σ_P c* + BCE(centerness)`` (mean over P).

Decoding (in-graph torch ops, exportable to ONNX): ``score = sqrt(sigmoid(cls) ·
sigmoid(centerness))`` over every class and location of every level, top-D, scores below the
threshold set to 0; class-aware NMS (``cnnkit.tasks.nms.batched_nms``) is the optional post-step
of ``postprocess``, as for the CenterNet :class:`~cnnkit.tasks.detect.Detector`, whose public
interface this class repeats.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit._checks import check_positive_int, check_probability
from cnnkit.tasks.boxes import elementwise_generalized_box_iou
from cnnkit.tasks.losses import sigmoid_focal_loss
from cnnkit.tasks.nms import kept_detections

PRIOR = 0.01  # FCOS / RetinaNet: every location starts as background with probability 0.99
MAX_LOG_DISTANCE = 8.0  # exp(8)·stride: far beyond any image, keeps exp finite early on


def _tower(channels: int, depth: int) -> nn.Sequential:
    """``depth`` × (3×3 conv, GroupNorm, ReLU) at ``channels`` channels."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, padding=1),
                   nn.GroupNorm(math.gcd(channels, 8), channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FCOSDetector(nn.Module):
    """FCOS detector: FPN over 2-3 backbone stages + one head shared by the levels.

    Args:
        backbone: a model of the tasks contract §1 (``feature_info`` + ``forward_stages``).
        num_classes: K object classes (no background class).
        strides: the pyramid levels, strictly increasing; each level reads the deepest
            ``feature_info`` stage at a stride <= the one given (levels that land on the same
            stage are one level; ``self.strides`` holds the strides used). Stages deeper than
            the last level still feed the top-down path (so every backbone parameter is trained).
        hidden: channels of the neck and the head.
        depth: 3×3 conv blocks in each head tower (classification, regression).
        size_limits: the level boundaries of ``m = max(l*, t*, r*, b*)`` in pixels, one per
            level used but the last (increasing); None: ``4·stride`` of each level but the last.
        center_radius: centre sampling radius in strides; None: every location in the box.
        score_threshold: detections below this score get score 0 (padding).
        max_detections: D, the top-k detections kept per image.
        nms_iou: IoU of the optional class-aware NMS in ``postprocess``.
        reg_weight: weight of the GIoU loss.

    Shape:
        x (N, C, H, W) -> per level i (``i = 0`` the finest) ``"logits{i}"`` (N, K, h_i, w_i),
        ``"ltrb{i}"`` (N, 4, h_i, w_i) in pixels, ``"centerness{i}"`` (N, 1, h_i, w_i), with
        ``h_i`` the stage's height (≈ H / strides[i]).

    Raises:
        ValueError: a bad ``num_classes``, ``strides`` the backbone lacks or not increasing,
            ``size_limits`` of the wrong length or not increasing, or another bad setting.

    Example:
        >>> det = FCOSDetector(backbone, 10, strides=(4, 8))  # doctest: +SKIP
        >>> boxes, scores, labels = det.decode(det(x))  # doctest: +SKIP
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *,
                 strides: Sequence[int] = (4, 8), hidden: int = 64, depth: int = 2,
                 size_limits: Sequence[float] | None = None, center_radius: float | None = 1.5,
                 score_threshold: float = 0.1, max_detections: int = 20, nms_iou: float = 0.5,
                 reg_weight: float = 1.0):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        hidden = check_positive_int(hidden, "hidden")
        depth = check_positive_int(depth, "depth")
        info = backbone.feature_info
        available = [f.stride for f in info]
        strides = [int(s) for s in strides] if isinstance(strides, (list, tuple)) else strides
        if (not isinstance(strides, list) or not strides
                or any(b <= a for a, b in zip(strides, strides[1:]))):
            raise ValueError(f"strides must be a non-empty increasing list of ints, got "
                             f"{strides!r}; e.g. (4, 8)")
        # each level: the deepest stage at stride <= the one asked for (as Detector's stride)
        stages = sorted({max((i for i, f in enumerate(info) if f.stride <= s), default=-1)
                         for s in strides})
        if stages[0] < 0:
            raise ValueError(f"strides={strides!r}: the backbone has no stage at stride <= "
                             f"{strides[0]} (its strides are {available}); pass larger ones")
        requested, strides = strides, [available[i] for i in stages]
        if size_limits is None:
            size_limits = [4.0 * s for s in strides[:-1]]
        size_limits = [float(v) for v in size_limits]
        if len(size_limits) != len(strides) - 1 or any(
                b <= a for a, b in zip(size_limits, size_limits[1:])) or any(
                v <= 0 for v in size_limits):
            raise ValueError(f"size_limits must be {len(strides) - 1} increasing positive "
                             f"pixel sizes (one per level but the last), got {size_limits!r}")
        if center_radius is not None and not center_radius > 0:
            raise ValueError(f"center_radius must be > 0 or None, got {center_radius!r}")
        check_probability(score_threshold, "score_threshold", inclusive_high=True)
        max_detections = check_positive_int(max_detections, "max_detections")
        check_probability(nms_iou, "nms_iou", inclusive_high=True)
        if not reg_weight > 0:
            raise ValueError(f"reg_weight must be > 0, got {reg_weight!r}")

        self.backbone = backbone
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.stride = self.strides[0]
        self.size_limits = tuple(size_limits)
        self.center_radius = None if center_radius is None else float(center_radius)
        self.score_threshold = float(score_threshold)
        self.max_detections = max_detections
        self.nms_iou = float(nms_iou)
        self.reg_weight = float(reg_weight)
        self.settings = {"strides": requested, "hidden": hidden, "depth": depth,
                         "size_limits": list(self.size_limits),
                         "center_radius": self.center_radius,
                         "score_threshold": self.score_threshold,
                         "max_detections": max_detections, "nms_iou": self.nms_iou,
                         "reg_weight": self.reg_weight}
        # the stages the neck reads: the levels' and, above them, the deepest one (top-down only)
        self.stages = stages
        if self.stages[-1] < len(info) - 1:
            self.stages.append(len(info) - 1)
        self.lateral = nn.ModuleList(nn.Conv2d(info[i].channels, hidden, 1) for i in self.stages)
        self.smooth = nn.ModuleList(nn.Conv2d(hidden, hidden, 3, padding=1)
                                    for _ in self.strides)
        self.cls_tower = _tower(hidden, depth)
        self.reg_tower = _tower(hidden, depth)
        self.cls_out = nn.Conv2d(hidden, num_classes, 3, padding=1)
        nn.init.normal_(self.cls_out.weight, std=0.01)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - PRIOR) / PRIOR))
        self.reg_out = nn.Conv2d(hidden, 4, 3, padding=1)
        nn.init.normal_(self.reg_out.weight, std=0.01)
        nn.init.zeros_(self.reg_out.bias)
        self.ctr_out = nn.Conv2d(hidden, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))

    @property
    def architecture(self) -> dict:
        return {"type": "task", "task": "detect", "head": "fcos",
                "backbone": self.backbone.architecture, "num_classes": self.num_classes,
                "kwargs": dict(self.settings)}

    # ------------------------------------------------------------------ network
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        stages = self.backbone.forward_stages(x)
        # (N, C_j, h_j, w_j) -> (N, hidden, h_j, w_j) per stage read
        laterals = [conv(stages[i]) for conv, i in zip(self.lateral, self.stages)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):  # top-down: nearest upsampling + add
            merged.insert(0, lateral + F.interpolate(merged[0], size=lateral.shape[-2:],
                                                     mode="nearest"))
        raw: dict[str, Tensor] = {}
        for i, (smooth, stride) in enumerate(zip(self.smooth, self.strides)):
            features = smooth(merged[i])  # (N, hidden, h_i, w_i)
            cls, reg = self.cls_tower(features), self.reg_tower(features)
            log_distance = (self.scales[i] * self.reg_out(reg)).clamp(max=MAX_LOG_DISTANCE)
            raw[f"logits{i}"] = self.cls_out(cls)  # (N, K, h_i, w_i)
            raw[f"ltrb{i}"] = stride * torch.exp(log_distance)  # (N, 4, h_i, w_i) pixels
            raw[f"centerness{i}"] = self.ctr_out(reg)  # (N, 1, h_i, w_i)
        return raw

    def _flat(self, raw: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, list]:
        """Every level's maps side by side: logits (N, K, L), ltrb (N, 4, L), centerness
        (N, 1, L) with L = Σ h_i·w_i (level 0 first, row-major), and the levels' (h, w)."""
        shapes = [tuple(raw[f"logits{i}"].shape[-2:]) for i in range(len(self.strides))]
        parts = []
        for kind in ("logits", "ltrb", "centerness"):
            maps = [raw[f"{kind}{i}"] for i in range(len(self.strides))]
            # (N, C, h_i, w_i) -> (N, C, h_i*w_i) per level -> (N, C, L)
            parts.append(torch.cat([m.flatten(2) for m in maps], dim=2))
        return parts[0], parts[1], parts[2], shapes

    def points(self, shapes: Sequence[tuple[int, int]], device=None,
               dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """The locations of every level, in the order of the flattened maps.

        Args:
            shapes: ``(h_i, w_i)`` of each level.

        Shape:
            -> centres (L, 2) pixel (x, y) = ((col + 0.5)·s_i, (row + 0.5)·s_i), strides (L,),
            level index (L,) int64; L = Σ h_i·w_i.
        """
        centres, strides, levels = [], [], []
        for i, ((h, w), stride) in enumerate(zip(shapes, self.strides)):
            xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * stride  # (w,)
            ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * stride  # (h,)
            grid = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=2)
            centres.append(grid.reshape(h * w, 2))  # (h, w, 2) -> (h*w, 2)
            strides.append(torch.full((h * w,), float(stride), device=device, dtype=dtype))
            levels.append(torch.full((h * w,), i, device=device, dtype=torch.int64))
        return torch.cat(centres), torch.cat(strides), torch.cat(levels)

    # ------------------------------------------------------------------ targets and loss
    def targets_for(self, boxes: list[Tensor], labels: list[Tensor],
                    shapes: Sequence[tuple[int, int]], device=None) -> dict[str, Tensor]:
        """Per-location training targets from per-image pixel xyxy boxes and labels.

        Args:
            boxes: per image (M_i, 4) pixel xyxy.
            labels: per image (M_i,) int64 in [0, K).
            shapes: ``(h_i, w_i)`` of each level.

        Shape:
            -> ``"labels"`` (N, L) int64 (-1 = background), ``"boxes"`` (N, L, 4) the box each
            location is assigned (0 for background), ``"positive"`` (N, L) bool,
            ``"centerness"`` (N, L) the target c* (0 for background).
        """
        centres, strides, levels = self.points(shapes, device=device)
        limits = torch.tensor([0.0, *self.size_limits, math.inf], device=device)
        low, high = limits[levels], limits[levels + 1]  # (L,) each
        out = {"labels": [], "boxes": [], "positive": [], "centerness": []}
        for image_boxes, image_labels in zip(boxes, labels):
            image_boxes = image_boxes.to(device=device, dtype=torch.float32).reshape(-1, 4)
            image_labels = image_labels.to(device=device, dtype=torch.int64).reshape(-1)
            x, y = centres[:, 0:1], centres[:, 1:2]  # (L, 1) each
            x0, y0, x1, y1 = image_boxes.unbind(1)  # (M,) each
            ltrb = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # (L, M, 4)
            if self.center_radius is None:
                inside = ltrb.min(dim=2).values > 0  # (L, M)
            else:
                radius = (self.center_radius * strides)[:, None]  # (L, 1)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2  # (M,) each
                rx0, ry0 = torch.maximum(x0, cx - radius), torch.maximum(y0, cy - radius)
                rx1, ry1 = torch.minimum(x1, cx + radius), torch.minimum(y1, cy + radius)
                inside = (x > rx0) & (x < rx1) & (y > ry0) & (y < ry1)  # (L, M)
            reach = ltrb.max(dim=2).values  # (L, M)
            in_range = (reach > low[:, None]) & (reach <= high[:, None])
            area = (x1 - x0) * (y1 - y0)  # (M,)
            cost = torch.where(inside & in_range, area.expand_as(reach), math.inf)  # (L, M)
            # a column of inf for "no box": an image without boxes is all background
            none = torch.full((len(cost), 1), math.inf, device=device)  # (L, 1)
            cost = torch.cat([cost, none], dim=1)  # (L, M+1)
            best, match = cost.min(dim=1)  # (L,) each
            positive = torch.isfinite(best)  # (L,)
            match = torch.where(positive, match, 0)  # background: any real index
            padded = torch.cat([image_boxes, torch.ones(1, 4, device=device)])  # (M+1, 4)
            matched = padded[match]  # (L, 4)
            target = torch.stack([x[:, 0] - matched[:, 0], y[:, 0] - matched[:, 1],
                                  matched[:, 2] - x[:, 0], matched[:, 3] - y[:, 0]], dim=1)
            target = target.clamp(min=1e-6)  # (L, 4); > 0 wherever positive
            lr, tb = target[:, 0::2], target[:, 1::2]  # (L, 2) each
            ctr = torch.sqrt(lr.min(1).values / lr.max(1).values
                             * tb.min(1).values / tb.max(1).values)
            found = torch.cat([image_labels, image_labels.new_zeros(1)])[match]  # (L,)
            out["labels"].append(torch.where(positive, found, -1))
            out["boxes"].append(matched * positive[:, None])
            out["positive"].append(positive)
            out["centerness"].append(ctr * positive)
        return {key: torch.stack(values) for key, values in out.items()}

    def loss(self, raw: dict[str, Tensor], targets: dict) -> dict[str, Tensor]:
        """Focal(cls)/|P| + reg_weight·centerness-weighted GIoU loss + BCE(centerness).

        Args:
            raw: ``forward``'s maps.
            targets: ``{"boxes": [ (M_i, 4) pixel xyxy ], "labels": [ (M_i,) ]}``.
        """
        logits, ltrb, centerness, shapes = self._flat(raw)
        device = logits.device
        dense = self.targets_for(targets["boxes"], targets["labels"], shapes, device=device)
        positive = dense["positive"]  # (N, L)
        count = positive.sum().clamp(min=1).float()
        onehot = F.one_hot(dense["labels"].clamp(min=0), self.num_classes).to(logits.dtype)
        onehot = onehot * positive[..., None]  # (N, L, K)
        onehot = onehot.permute(0, 2, 1)  # (N, L, K) -> (N, K, L)
        cls = sigmoid_focal_loss(logits, onehot, reduction="sum") / count
        centres, _, _ = self.points(shapes, device=device, dtype=ltrb.dtype)
        pred = ltrb.permute(0, 2, 1)[positive]  # (N, 4, L) -> (N, L, 4) -> (P, 4)
        where = centres.expand(len(positive), -1, -1)[positive]  # (N, L, 2) -> (P, 2)
        pred_boxes = torch.cat([where - pred[:, :2], where + pred[:, 2:]], dim=1)  # (P, 4)
        weight = dense["centerness"][positive]  # (P,)
        giou = 1 - elementwise_generalized_box_iou(pred_boxes, dense["boxes"][positive])
        reg = (giou * weight).sum() / weight.sum().clamp(min=1e-6)
        ctr = F.binary_cross_entropy_with_logits(centerness[:, 0][positive], weight,
                                                 reduction="sum") / count
        total = cls + self.reg_weight * reg + ctr
        return {"loss": total, "classification": cls.detach(), "giou": reg.detach(),
                "centerness": ctr.detach()}

    # ------------------------------------------------------------------ decoding
    def decode(self, raw: dict[str, Tensor], score_threshold: float | None = None,
               max_detections: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The top-D (class, location) pairs by ``sqrt(sigmoid(cls)·sigmoid(centerness))``.

        Shape:
            -> boxes (N, D, 4) pixel xyxy, scores (N, D) (0 where below the threshold),
            labels (N, D) int64; D = min(max_detections, K·L).
        """
        threshold = self.score_threshold if score_threshold is None else score_threshold
        k = self.max_detections if max_detections is None else max_detections
        logits, ltrb, centerness, shapes = self._flat(raw)
        n, classes, locations = logits.shape
        scores = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(centerness))  # (N, K, L)
        top, index = scores.reshape(n, classes * locations).topk(
            min(k, classes * locations), dim=1)  # (N, K, L) -> (N, K*L) -> (N, D)
        labels = index // locations
        where = index % locations  # (N, D)
        distances = ltrb.gather(2, where.unsqueeze(1).expand(n, 4, where.shape[1]))  # (N, 4, D)
        centres, _, _ = self.points(shapes, device=logits.device, dtype=ltrb.dtype)
        xy = centres[where]  # (N, D, 2)
        boxes = torch.stack([xy[..., 0] - distances[:, 0], xy[..., 1] - distances[:, 1],
                             xy[..., 0] + distances[:, 2], xy[..., 1] + distances[:, 3]], dim=2)
        top = top * (top >= threshold).to(top.dtype)
        return boxes, top, labels

    def postprocess(self, raw: dict[str, Tensor], nms: bool = True) -> list[dict[str, Tensor]]:
        """Decode, drop zero scores and (optionally) apply class-aware NMS; per-image dicts."""
        return kept_detections(*self.decode(raw), self.nms_iou, nms=nms)

    def score_maps(self, raw: dict[str, Tensor]) -> Tensor:
        """Class probabilities ``sigmoid(cls)`` of the finest level ("what the detector sees").

        Shape:
            -> (N, K, h_0, w_0).
        """
        return torch.sigmoid(raw["logits0"])
