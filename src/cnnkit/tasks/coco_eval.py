"""Detection metrics: COCO mAP through pycocotools, and Pascal-VOC AP@0.5.

The COCO numbers come from pycocotools' ``COCOeval`` itself (the reference implementation, not
a rewrite): this module only builds its ``COCO`` objects in memory from per-image tensors.

Ground truth and detections are sequences with one entry per image:

- ground truth: ``{"boxes": (M, 4), "labels": (M,), "ignore": (M,) bool (optional)}``, or a
  detect ``AnnotatedData``-like object with padded ``labels (N, M)`` (-1 = no object),
  ``boxes (N, M, 4)`` and ``ignore (N, M)`` (COCO ``iscrowd`` / VOC ``difficult``);
- detections: ``{"boxes": (D, 4), "scores": (D,), "labels": (D,)}``.

Boxes are xyxy pixels (max exclusive), labels 0-based indices into ``class_names``; in the COCO
objects a label ``k`` becomes category id ``k + 1``.
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from cnnkit._checks import check_probability
from cnnkit.tasks.boxes import box_iou

__all__ = ["coco_evaluate", "to_coco_results", "voc_ap"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- input handling

def _as_image_list(ground_truth) -> list[dict[str, Tensor]]:
    """One ``{"boxes", "labels", "ignore"}`` per image, from dicts or a padded AnnotatedData."""
    is_annotated = hasattr(ground_truth, "labels") and hasattr(ground_truth, "boxes")
    if is_annotated and not isinstance(ground_truth, dict):
        labels, boxes = ground_truth.labels, ground_truth.boxes
        ignore = getattr(ground_truth, "ignore", None)
        if labels is None or boxes is None or labels.ndim != 2:
            raise ValueError(
                "ground_truth must be a detect AnnotatedData with labels (N, M) and "
                "boxes (N, M, 4), "
                f"got labels {None if labels is None else tuple(labels.shape)!r}"
            )
        labels, boxes = labels.detach().cpu().long(), boxes.detach().cpu().double()
        ignore = torch.zeros_like(labels, dtype=torch.bool) if ignore is None else ignore.cpu()
        out = []
        for i in range(labels.shape[0]):
            keep = labels[i] >= 0  # (M,): -1 is padding
            out.append(
                {"boxes": boxes[i][keep], "labels": labels[i][keep], "ignore": ignore[i][keep]}
            )
        return out
    if not isinstance(ground_truth, Sequence):
        raise TypeError(
            f"ground_truth must be a list of per-image dicts or a detect AnnotatedData, "
            f"got {type(ground_truth).__name__}"
        )
    out = []
    for i, image in enumerate(ground_truth):
        boxes = _field(image, "boxes", i, "ground_truth")
        labels = _field(image, "labels", i, "ground_truth")
        ignore = image.get("ignore")
        if ignore is None:
            ignore = torch.zeros(labels.shape, dtype=torch.bool)
        ignore = torch.as_tensor(ignore).bool().reshape(-1)
        if not boxes.shape[0] == labels.shape[0] == ignore.shape[0]:
            raise ValueError(
                f"ground_truth[{i}] must have as many boxes, labels and ignore flags, got "
                f"{boxes.shape[0]}, {labels.shape[0]} and {ignore.shape[0]}"
            )
        keep = labels >= 0  # padding (-1) is no object
        out.append({"boxes": boxes[keep], "labels": labels[keep], "ignore": ignore[keep]})
    return out


def _field(image, key: str, index: int, arg: str) -> Tensor:
    if not isinstance(image, dict) or key not in image:
        raise ValueError(f"{arg}[{index}] must be a dict with a {key!r} entry, got {image!r}")
    value = torch.as_tensor(image[key]).detach().cpu()
    if key == "boxes":
        value = value.double().reshape(-1, 4)  # (M, 4), also when M = 0
    elif key == "labels":
        value = value.long().reshape(-1)
    else:
        value = value.double().reshape(-1)
    return value


def _as_detections(detections, num_images: int) -> list[dict[str, Tensor]]:
    if not isinstance(detections, Sequence) or len(detections) != num_images:
        raise ValueError(
            f"detections must be a list with one dict per image ({num_images} images in "
            f"ground_truth), got {type(detections).__name__} {detections!r:.80}"
        )
    out = []
    for i, image in enumerate(detections):
        d = {key: _field(image, key, i, "detections") for key in ("boxes", "scores", "labels")}
        if not d["boxes"].shape[0] == d["scores"].shape[0] == d["labels"].shape[0]:
            raise ValueError(
                f"detections[{i}] must have as many boxes, scores and labels, got "
                f"{d['boxes'].shape[0]}, {d['scores'].shape[0]} and {d['labels'].shape[0]}"
            )
        out.append(d)
    return out


def _check_labels(images: list[dict[str, Tensor]], num_classes: int, arg: str) -> None:
    for i, image in enumerate(images):
        bad = (image["labels"] < 0) | (image["labels"] >= num_classes)
        if bad.any():
            raise ValueError(
                f"{arg}[{i}] has label {int(image['labels'][bad][0])!r}, "
                f"outside [0, {num_classes}) "
                f"for the {num_classes} class_names"
            )


def _xywh(boxes: Tensor) -> list[list[float]]:
    """xyxy ``(M, 4)`` -> COCO ``[x, y, width, height]`` lists (max exclusive, so no ``+ 1``)."""
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)  # (M, 4)
    return xywh.tolist()


# ----------------------------------------------------------------------------- COCO

def to_coco_results(detections, image_ids: Sequence[int] | None = None) -> list[dict]:
    """Detections in the COCO results format: ``{"image_id", "category_id", "bbox", "score"}``.

    ``bbox`` is ``[x, y, width, height]`` in pixels; ``category_id`` is ``label + 1``.

    Args:
        detections: one ``{"boxes", "scores", "labels"}`` dict per image.
        image_ids: the COCO id of each image (default: 0, 1, 2, ...).

    Shape:
        per image boxes ``(D, 4)``, scores ``(D,)``, labels ``(D,)`` -> sum of D result dicts.

    Raises:
        ValueError: an entry misses a key or its lengths disagree, or ``image_ids`` has the
            wrong length.

    Example:
        >>> one = {"boxes": torch.tensor([[1.0, 2, 4, 8]]), "scores": torch.tensor([0.5]),
        ...        "labels": torch.tensor([0])}
        >>> to_coco_results([one])
        [{'image_id': 0, 'category_id': 1, 'bbox': [1.0, 2.0, 3.0, 6.0], 'score': 0.5}]
    """
    n = len(detections) if isinstance(detections, Sequence) else -1
    dets = _as_detections(detections, n)
    if image_ids is None:
        image_ids = list(range(n))
    elif len(image_ids) != n:
        raise ValueError(f"image_ids must have one id per image ({n}), got {len(image_ids)} ids")
    results = []
    for image_id, d in zip(image_ids, dets):
        for box, score, label in zip(_xywh(d["boxes"]), d["scores"].tolist(), d["labels"].tolist()):
            results.append(
                {"image_id": int(image_id), "category_id": int(label) + 1,
                 "bbox": box, "score": score}
            )
    return results


def _coco(images: list[int], class_names: Sequence[str], annotations: list[dict]):
    from pycocotools.coco import COCO  # import cost: pycocotools, only when evaluating

    coco = COCO()
    coco.dataset = {
        "images": [{"id": i} for i in images],
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(class_names)],
        "annotations": annotations,
    }
    coco.createIndex()
    return coco


def coco_evaluate(ground_truth, detections, class_names: Sequence[str]) -> dict:
    """COCO box metrics from pycocotools' ``COCOeval``.

    Returns ``map`` (AP averaged over IoU 0.50:0.05:0.95, COCO's headline number), ``map50``,
    ``map75``, ``per_class_ap`` (``{name: AP@[.5:.95]}``, ``None`` for a class without
    ground truth) and ``recall`` (COCO's AR@100: recall with up to 100 detections per image,
    averaged over the same IoU thresholds). Ground-truth boxes marked ``ignore`` are COCO
    crowd regions: a detection on one is neither a hit nor a false positive. pycocotools'
    printout is captured and sent to the debug log.

    Args:
        ground_truth: per-image ground truth (see the module docstring).
        detections: per-image detections, same length.
        class_names: the K class names; labels index into them.

    Shape:
        N images; per image gt boxes ``(M, 4)``, detection boxes ``(D, 4)`` (xyxy pixels).

    Raises:
        TypeError / ValueError: malformed inputs (naming the image), a label outside
            [0, K), or no scorable (non-ignored) ground-truth object at all, for which COCO AP
            is undefined.

    Example:
        >>> gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
        >>> det = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]),
        ...         "labels": torch.tensor([0])}]
        >>> round(coco_evaluate(gt, det, ["digit"])["map"], 6)
        1.0
    """
    from pycocotools.cocoeval import COCOeval  # import cost: pycocotools, only when evaluating

    class_names = list(class_names)
    gts = _as_image_list(ground_truth)
    dets = _as_detections(detections, len(gts))
    _check_labels(gts, len(class_names), "ground_truth")
    _check_labels(dets, len(class_names), "detections")
    if not any((~g["ignore"]).any() for g in gts):
        raise ValueError(
            "ground_truth holds no scorable object (every image is empty or all boxes are "
            "ignored); "
            "COCO AP is undefined — evaluate on data with at least one annotated object"
        )

    gt_anns, dt_anns = [], []
    for image_id, (g, d) in enumerate(zip(gts, dets)):
        for box, label, crowd in zip(_xywh(g["boxes"]), g["labels"].tolist(), g["ignore"].tolist()):
            # ids start at 1: COCOeval uses id 0 to mean "unmatched".
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id, "category_id": label + 1,
                            "bbox": box, "area": box[2] * box[3], "iscrowd": int(crowd)})
        for box, label, score in zip(_xywh(d["boxes"]), d["labels"].tolist(), d["scores"].tolist()):
            dt_anns.append({"id": len(dt_anns) + 1, "image_id": image_id, "category_id": label + 1,
                            "bbox": box, "area": box[2] * box[3], "iscrowd": 0, "score": score})

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        image_ids = list(range(len(gts)))
        truth = _coco(image_ids, class_names, gt_anns)
        evaluator = COCOeval(truth, _coco(image_ids, class_names, dt_anns), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.debug("pycocotools:\n%s", printed.getvalue())

    stats = evaluator.stats
    precision = evaluator.eval["precision"]  # (T IoUs, R recalls, K classes, A areas, M max-dets)
    per_class = {}
    for k, name in enumerate(class_names):
        p = precision[:, :, k, 0, -1]  # area "all", 100 detections
        per_class[name] = float(np.mean(p[p > -1])) if (p > -1).any() else None
    return {
        "map": float(stats[0]),
        "map50": float(stats[1]),
        "map75": float(stats[2]),
        "per_class_ap": per_class,
        "recall": float(stats[8]),
    }


# ----------------------------------------------------------------------------- Pascal VOC

def _all_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ AP: area under the precision envelope (precision made non-increasing in recall)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_ap(
    ground_truth, detections, class_names: Sequence[str], iou_threshold: float = 0.5, *,
    curves: bool = False,
) -> dict:
    """Pascal-VOC average precision (VOC 2010+ all-point interpolation) at one IoU threshold.

    pycocotools has no VOC metric, so this is our own code, following the VOC devkit's
    ``voc_eval``: per class, detections of all images are taken by descending score (ties in
    input order); one is a hit when its best-overlapping ground-truth box of that class has
    IoU ``> iou_threshold`` and was not hit before, and a false positive otherwise, except that
    a best match that is "difficult" (``ignore``) makes the detection count as neither.
    Difficult boxes do not count as objects to find. AP is the area under the precision
    envelope. Unlike the devkit, boxes are max-exclusive, so there is no ``+ 1`` in widths.

    Args:
        ground_truth: per-image ground truth (see the module docstring); ``ignore`` = difficult.
        detections: per-image detections, same length.
        class_names: the K class names.
        iou_threshold: the overlap for a hit (VOC: 0.5).
        curves: also return each class's precision–recall curve.

    Shape:
        as :func:`coco_evaluate`.

    Returns:
        ``{"map50": mean AP over classes with at least one non-difficult object,
        "per_class_ap": {name: AP, or None for a class with no such object}}``; with
        ``curves``, also ``"curves": {name: (recall (D,), precision (D,))}`` (numpy, one point
        per detection of the class by descending score; classes with objects only).

    Raises:
        TypeError / ValueError: malformed inputs, a label outside [0, K), or no class with a
            non-difficult object.

    Example:
        >>> gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
        >>> det = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]),
        ...         "labels": torch.tensor([0])}]
        >>> voc_ap(gt, det, ["digit"])
        {'map50': 1.0, 'per_class_ap': {'digit': 1.0}}
    """
    threshold = check_probability(iou_threshold, "iou_threshold", inclusive_high=True)
    class_names = list(class_names)
    gts = _as_image_list(ground_truth)
    dets = _as_detections(detections, len(gts))
    _check_labels(gts, len(class_names), "ground_truth")
    _check_labels(dets, len(class_names), "detections")

    per_class: dict[str, float | None] = {}
    pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, name in enumerate(class_names):
        gt_boxes = [g["boxes"][g["labels"] == k] for g in gts]
        difficult = [g["ignore"][g["labels"] == k] for g in gts]
        positives = sum(int((~d).sum()) for d in difficult)
        if positives == 0:
            per_class[name] = None
            continue
        found = [torch.zeros(len(b), dtype=torch.bool) for b in gt_boxes]
        candidates = []  # (score, image index, box) of every class-k detection
        for i, d in enumerate(dets):
            of_class = d["labels"] == k
            scores, boxes = d["scores"][of_class].tolist(), d["boxes"][of_class]
            candidates += [(score, i, box) for score, box in zip(scores, boxes)]
        candidates.sort(key=lambda c: -c[0])  # stable: ties keep image / input order
        hits = []  # 1 hit, 0 false positive; difficult matches are left out
        for _, i, box in candidates:
            if len(gt_boxes[i]) == 0:
                hits.append(0)
                continue
            overlaps = box_iou(box[None], gt_boxes[i])[0]  # (M,)
            best = int(overlaps.argmax())
            if overlaps[best] <= threshold:
                hits.append(0)
            elif difficult[i][best]:
                continue
            elif not found[i][best]:
                found[i][best] = True
                hits.append(1)
            else:
                hits.append(0)
        tp = np.cumsum(np.array(hits, dtype=np.float64))
        fp = np.cumsum(1.0 - np.array(hits, dtype=np.float64))
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class[name] = _all_point_ap(recall, precision)
        pr_curves[name] = (recall, precision)
    scored = [ap for ap in per_class.values() if ap is not None]
    if not scored:
        raise ValueError(
            "ground_truth holds no non-difficult object of any class; VOC AP is undefined"
        )
    result = {"map50": float(np.mean(scored)), "per_class_ap": per_class}
    if curves:
        result["curves"] = pr_curves
    return result
