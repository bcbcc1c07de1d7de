"""``open_annotated``: turn a ``--data`` string into localise / segment / detect splits.

Accepted specs, recognised from file and folder names only (nothing is decoded to decide):

==================================================  =========  ==========================
spec                                                task       read by (cnnkit.data.)
==================================================  =========  ==========================
``mnist-localize``, ``mnist-segment``,              its own    ``scenes.open_scenes``
``mnist-detect``                                               (generated, seeded)
a folder with ``Annotations/`` + ``JPEGImages/``    detect     ``voc.read_voc``
(Pascal VOC, ``ImageSets/Main/{train,val}.txt``)
a folder with ``train/annotations.json`` (or        detect     ``coco.read_coco``
``annotations.json``), or one COCO ``.json`` file
a folder with ``train/images/`` + ``train/masks/``  segment    ``masks.read_masks``
a folder with ``train/labels.csv`` (or              localize   ``boxes.read_boxes``
``labels.csv``) whose header has the box columns
==================================================  =========  ==========================

Anything else is a classification source for :func:`cnnkit.data.open.open_data`
(:func:`infer_task` says ``"classify"``). A file or folder wins over a scene name it shares
(as in ``open_data``). With ``task="localize"``, detection data with
exactly one object per image is read as localisation data.

Example:
    >>> infer_task("mnist-detect"), infer_task("digits")
    ('detect', 'classify')
    >>> splits = open_annotated("mnist-localize", sizes={"train": 200, "val": 50, "test": 0})
    >>> splits.task, splits.input_shape
    ('localize', (1, 64, 64))
"""
from __future__ import annotations

import csv
import difflib
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnkit._checks import check_probability, standardize_tuple
from cnnkit.data.annotated import TASKS, AnnotatedData, AnnotatedSplits, with_val_split
from cnnkit.data.boxes import BOX_HEADER, LABELS_CSV, read_boxes
from cnnkit.data.builtin import builtin_names
from cnnkit.data.coco import ANNOTATIONS_JSON, read_coco
from cnnkit.data.masks import IMAGES_DIR, MASKS_DIR, read_masks
from cnnkit.data.named import is_named_dataset
from cnnkit.data.open import convert_channels, resize_images
from cnnkit.data.scenes import SCENES, open_scenes, scene_names
from cnnkit.data.voc import read_voc
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

# layout -> (task, how a user recognises it); the order in which folders are tried
LAYOUTS = {
    "voc": ("detect", "a Pascal VOC folder (Annotations/, JPEGImages/, ImageSets/Main/)"),
    "coco": ("detect", "a COCO folder (train/annotations.json + images, optionally val/, "
                       "test/) or a COCO instances .json file"),
    "masks": ("segment", "a segmentation folder (classes.txt, train/images/ + train/masks/, "
                         "optionally val/, test/)"),
    "boxes": ("localize", "a localisation folder (train/labels.csv with the header "
                          f"{','.join(BOX_HEADER)}, optionally val/, test/)"),
}
_BOX_COLUMNS = set(BOX_HEADER[2:])


def infer_task(spec) -> str:
    """The task a ``--data`` spec is laid out for, from names and headers only (no decoding).

    Args:
        spec: a scene name, a folder or a file path (or any classification spec of
            :func:`cnnkit.data.open.open_data`).

    Returns:
        ``"localize"``, ``"segment"`` or ``"detect"`` for the layouts of the module table;
        ``"classify"`` for anything else (class folders, IDX, CIFAR, arrays, ``digits``, ...).

    Raises:
        TypeError: ``spec`` is not a str or path.
        DataError: ``spec`` exists nowhere, is no dataset name, and is close to a scene name
            (a typo such as ``"mnist-detcet"``); the message names the scene meant.

    Example:
        >>> infer_task("mnist-segment")
        'segment'
    """
    layout, _ = _layout(spec)
    if layout is None:
        return "classify"
    return SCENES[str(spec)].task if layout == "scene" else LAYOUTS[layout][0]


def open_annotated(spec, *, task: str | None = None, val_split: float = 0.1, seed: int = 0,
                   size=None, channels: int | None = None, data_dir=None, image_root=None,
                   sizes: dict[str, int] | None = None) -> AnnotatedSplits:
    """Open a localise / segment / detect dataset (see the module table) as train/val/test.

    Args:
        spec: a scene name, a dataset folder, or a COCO ``.json`` file.
        task: the task wanted; None: the data's own. ``"localize"`` on detection data with
            exactly one object per image reads it as localisation data.
        val_split: share of train held out as val (seeded) when the data has no val split,
            in (0, 1).
        seed: seed of that split, and of generated scenes.
        size: (H, W) (or an int) every image is brought to, boxes scaled, masks resized by
            nearest neighbour; None: the first training image's size.
        channels: 1 or 3; None: 3 if any training image is in colour, else 1.
        data_dir: where scenes look for ``mnist/`` (other specs ignore it).
        image_root: COCO only: the folder the JSON's ``file_name`` entries are relative to.
        sizes: scenes only: scenes per split, see :func:`~cnnkit.data.scenes.open_scenes`.

    Shape:
        Each split's images are uint8 (N, C, H, W), sharing (C, H, W) and the class names;
        targets as in :class:`~cnnkit.data.annotated.AnnotatedData`.

    Raises:
        TypeError: ``spec`` is not a str or path.
        ValueError: a bad ``val_split``, ``size`` or ``channels``; ``sizes`` for a spec that
            is not a scene name; ``image_root`` for data that is not COCO.
        DataError: a spec of no accepted layout (the message lists them), a ``task`` that is
            not the data's (naming both and the fix), detection data read as localisation with
            an image of 0 or several objects, or anything a reader rejects.

    Example:
        >>> splits = open_annotated("data/det", task="detect")
        >>> splits.train.targets().keys()
        dict_keys(['labels', 'boxes', 'ignore'])
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be None or one of {list(TASKS)}, got {task!r}")
    val_split = check_probability(val_split, "val_split")
    target = None if size is None else standardize_tuple(size, 2, "size")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None (keep), 1 (grayscale) or 3 (RGB), got "
                         f"{channels!r}")
    layout, path = _layout(spec)
    if layout is None:
        raise DataError(_not_annotated_message(spec, task))
    data_task = SCENES[str(spec)].task if layout == "scene" else LAYOUTS[layout][0]
    wanted = data_task if task is None else task
    convert = wanted == "localize" and data_task == "detect"
    if wanted != data_task and not convert:
        raise DataError(f"data {str(spec)!r} is {data_task} data ({_describe(layout)}), but "
                        f"task={task!r} was asked; pass task={data_task!r} (--task {data_task}) "
                        f"or give {wanted} data: {_accepted(wanted)}")
    if sizes is not None and layout != "scene":
        raise ValueError(f"sizes applies to the generated scenes {scene_names()} only, got "
                         f"sizes={sizes!r} for data {str(spec)!r}; drop sizes")
    if image_root is not None and layout != "coco":
        raise ValueError(f"image_root applies to COCO data only, got image_root={image_root!r} "
                         f"for {_describe(layout)}; drop image_root")
    options = {"val_split": val_split, "seed": seed, "size": target, "channels": channels}
    if layout == "scene":
        splits = _open_scene(str(spec), sizes=sizes, data_dir=data_dir, **options)
    elif layout == "voc":
        splits = read_voc(path, **options)
    elif layout == "coco":
        splits = read_coco(path, image_root=image_root, **options)
    elif layout == "masks":
        splits = read_masks(path, **options)
    else:
        splits = read_boxes(path, **options)
    if convert:
        splits = AnnotatedSplits(*(None if part is None else _one_box_each(part, spec)
                                   for part in (splits.train, splits.val, splits.test)))
    logger.info("%s: %s data (%s), %s", spec, splits.task, _describe(layout),
                ", ".join(f"{name} {len(part)}" for name, part in splits.parts().items()))
    return splits


def _layout(spec) -> tuple[str | None, Path | None]:
    """``(layout, path)``: ``"scene"`` or a key of :data:`LAYOUTS`, or ``(None, None)``."""
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"data must be a path or a dataset name (str), got {spec!r}")
    text = str(os.fspath(spec))
    path = Path(text).expanduser()
    if path.is_file():
        return ("coco", path) if path.suffix.lower() == ".json" else (None, None)
    if not path.is_dir():
        if text in SCENES:
            return "scene", None
        close = difflib.get_close_matches(text, scene_names(), n=1, cutoff=0.8)
        if close and not is_named_dataset(text) and text not in builtin_names():
            raise DataError(f"unknown data {text!r}: no such file or folder and no dataset of "
                            f"that name; did you mean the scenes {close[0]!r}?")
        return None, None
    train = path / "train" if (path / "train").is_dir() else path
    if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
        return "voc", path
    if (train / ANNOTATIONS_JSON).is_file():
        return "coco", path
    if (path / "train" / IMAGES_DIR).is_dir() and (path / "train" / MASKS_DIR).is_dir():
        return "masks", path
    if (train / LABELS_CSV).is_file() and _has_box_columns(train / LABELS_CSV):
        return "boxes", path
    return None, None


def _has_box_columns(path: Path) -> bool:
    """Whether the first line of a CSV names the box columns x_min, y_min, x_max, y_max
    (True for an undecodable file, so that the box reader says what is wrong with it)."""
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error):
        return True
    return _BOX_COLUMNS <= {cell.strip() for cell in header}


def _describe(layout: str) -> str:
    return "generated scenes" if layout == "scene" else LAYOUTS[layout][1]


def _accepted(task: str | None = None) -> str:
    """The accepted specs (of one task, or all), as one sentence."""
    scenes = [name for name in scene_names() if task in (None, SCENES[name].task)]
    layouts = [text for kind, text in LAYOUTS.values() if task in (None, kind)]
    if task == "localize":
        layouts.append("COCO or VOC detection data with exactly one object per image")
    return "; ".join(layouts + [f"a scene name ({', '.join(scenes)})"])


def _not_annotated_message(spec, task: str | None) -> str:
    text = str(os.fspath(spec))
    path = Path(text).expanduser()
    if path.is_dir():
        what = f"folder {text!r} has none of the annotated layouts"
    elif path.is_file():
        what = f"file {text!r} is not a COCO .json file"
    elif is_named_dataset(text) or text in builtin_names():
        what = f"{text!r} is a classification dataset (one label per image)"
    else:
        what = f"unknown data {text!r}: no such file or folder and no scene name"
    if task == "classify":
        return (f"task 'classify' is read by cnnkit.data.open_data, not open_annotated; "
                f"{what}")
    wanted = f"{task} data" if task else "localisation, segmentation or detection data"
    return f"{what}; {wanted} is: {_accepted(task)}"


def _open_scene(name: str, *, sizes, data_dir, val_split: float, seed: int, size,
                channels) -> AnnotatedSplits:
    """Generated scenes, brought to ``size`` and ``channels`` like the readers' images."""
    made = open_scenes(name, seed=seed, sizes=sizes, data_dir=data_dir)
    parts = [None if part is None else _conform(part, size, channels)
             for part in (made.train, made.val, made.test)]
    return with_val_split(*parts, val_split=val_split, seed=seed, source=name)


def _conform(data: AnnotatedData, size, channels) -> AnnotatedData:
    """``data`` with images stretched to ``size`` (boxes scaled, masks nearest) and converted
    to ``channels``; the same object when nothing changes.

    Shape:
        images (N, C, H, W) -> (N, channels, size[0], size[1]); boxes (..., 4) scaled by
        (W'/W, H'/H, W'/W, H'/H); masks (N, H, W) -> (N, size[0], size[1]).
    """
    c, h, w = data.input_shape
    target = (h, w) if size is None else tuple(size)
    if (channels is None or channels == c) and target == (h, w):
        return data
    images = convert_channels(data.images, channels) if channels else data.images
    boxes, masks = data.boxes, data.masks
    if target != (h, w):
        images = resize_images(images, target, resize="stretch")
        if boxes is not None:
            scale = torch.tensor([target[1] / w, target[0] / h] * 2, dtype=torch.float64)
            boxes = (boxes.double() * scale).float()
        if masks is not None:
            masks = F.interpolate(masks[:, None].float(), size=target,
                                  mode="nearest")  # (N, H, W) -> (N, 1, H', W')
            masks = masks[:, 0].to(torch.uint8)  # (N, 1, H', W') -> (N, H', W')
    return AnnotatedData(data.task, images, list(data.class_names), labels=data.labels,
                         boxes=boxes, masks=masks, ignore=data.ignore, names=list(data.names))


def _one_box_each(data: AnnotatedData, spec) -> AnnotatedData:
    """Detection data with exactly one object per image, as localisation data.

    Shape:
        labels (N, M), boxes (N, M, 4) -> labels (N,), boxes (N, 4): each image's one object.

    Raises:
        DataError: an image with no object or with several, naming the first such image.
    """
    present = data.labels >= 0  # (N, M)
    counts = present.sum(1)
    bad = torch.nonzero(counts != 1).flatten()
    if len(bad):
        i = int(bad[0])
        raise DataError(f"task 'localize' needs exactly one object per image, but image "
                        f"{data.names[i]!r} of {str(spec)!r} has {int(counts[i])} (and "
                        f"{len(bad) - 1} more images have 0 or several); use task='detect' "
                        "(--task detect) for images with many objects")
    column = present.to(torch.int8).argmax(1)  # (N,) the position of each image's object
    rows = torch.arange(len(data))
    return AnnotatedData("localize", data.images, list(data.class_names),
                         labels=data.labels[rows, column], boxes=data.boxes[rows, column],
                         names=list(data.names))
