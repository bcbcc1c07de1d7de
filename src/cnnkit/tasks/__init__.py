"""What turns a backbone's feature maps into boxes or masks: heads, box ops, losses and metrics.

The modules agree on the shapes in docs/tasks-contract.md (boxes are pixel ``(x_min, y_min,
x_max, y_max)`` with the max exclusive; tensors are ``(N, C, H, W)``). The heads attach to any
backbone through the model interface (``feature_info`` + ``forward_stages``).

- :mod:`cnnkit.tasks.boxes`, :mod:`~cnnkit.tasks.nms`: box arithmetic and class-aware NMS.
- :mod:`cnnkit.tasks.losses`, :mod:`~cnnkit.tasks.metrics`, :mod:`~cnnkit.tasks.coco_eval`:
  GIoU/Dice/focal losses, localisation and segmentation metrics, COCO mAP via pycocotools.
- :mod:`cnnkit.tasks.localize`, :mod:`~cnnkit.tasks.segment`, :mod:`~cnnkit.tasks.detect`,
  :mod:`~cnnkit.tasks.fcos`:
  the task models; :mod:`cnnkit.tasks.build` rebuilds them and picks a default per task.
"""
from cnnkit.tasks.boxes import (box_area, box_iou, clip_boxes, cxcywh_to_xyxy,
                                elementwise_generalized_box_iou, generalized_box_iou,
                                xyxy_to_cxcywh)
from cnnkit.tasks.build import build_task_model, default_for
from cnnkit.tasks.coco_eval import coco_evaluate, to_coco_results, voc_ap
from cnnkit.tasks.detect import Detector
from cnnkit.tasks.fcos import FCOSDetector
from cnnkit.tasks.localize import LocalizationModel
from cnnkit.tasks.losses import dice_loss, giou_loss, sigmoid_focal_loss
from cnnkit.tasks.metrics import LocalizationMetrics, SegmentationMetrics
from cnnkit.tasks.nms import batched_nms, nms_reference, padded_nms
from cnnkit.tasks.segment import FCN, UNet

__all__ = ["Detector", "FCN", "FCOSDetector", "LocalizationMetrics", "LocalizationModel",
           "SegmentationMetrics", "UNet", "batched_nms", "box_area", "box_iou",
           "build_task_model", "clip_boxes", "coco_evaluate", "cxcywh_to_xyxy", "default_for",
           "dice_loss", "elementwise_generalized_box_iou", "generalized_box_iou", "giou_loss",
           "nms_reference", "padded_nms", "sigmoid_focal_loss", "to_coco_results", "voc_ap",
           "xyxy_to_cxcywh"]
