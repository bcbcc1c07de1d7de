"""Reader and writer of COCO instances JSON for detection: many classes and boxes per image.

The JSON holds ``images`` (``id``, ``file_name``, optionally ``width``/``height``),
``annotations`` (``image_id``, ``category_id``, ``bbox`` = ``[x, y, width, height]`` in pixels,
optionally ``iscrowd``) and ``categories`` (``id``, ``name``). Category ids become contiguous
labels 0..K-1 in the order of ``categories``; ``iscrowd`` objects are kept but marked
``ignore``. Image files are looked up relative to the JSON's folder, or under ``image_root``.
The default dataset layout::

    ROOT/
      train/  annotations.json  a.png  b.jpg ...
      val/    annotations.json  ...
      test/   annotations.json  ...   (optional)

Images are decoded by :mod:`cnnkit.data.folder` (its size limits and channel rules); images
whose size differs from ``size`` (default: the first training image's) are stretched to it,
with their boxes scaled. Targets are padded to the most objects M of any image of the split:
labels (N, M) with -1, boxes (N, M, 4) xyxy pixels (max exclusive).

Example:
    >>> write_coco(splits, "data/det")
    PosixPath('data/det')
    >>> read_coco("data/det").train.boxes.shape
    torch.Size([50, 5, 4])
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits, parts_to_write, with_val_split
from cnnkit.data.folder import DEFAULT_MAX_PIXELS, decode_image, split_folders
from cnnkit.errors import DataError

ANNOTATIONS_JSON = "annotations.json"


def read_coco_split(path, *, image_root=None, categories: list[tuple[int, str]] | None = None,
                    size=None, channels: int | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedData:
    """Read one COCO instances JSON and its images as detection data.

    Args:
        path: the JSON file.
        image_root: the folder the ``file_name`` entries are relative to; None: the JSON's.
        categories: ``(id, name)`` pairs that must equal the file's (e.g. the training split's);
            None: take the file's.
        size: (H, W) to bring every image to (boxes scaled); None: the first image's size.
        channels: 1 or 3; None: 3 if any image is in colour, else 1.
        max_pixels: refuse images with more pixels than this.

    Shape:
        images (N, C, H, W) uint8, labels (N, M) int64 (-1 = padding), boxes (N, M, 4) float32
        xyxy pixels, ignore (N, M) bool.

    Raises:
        DataError: a missing or malformed JSON, a missing or mistyped key, an image listed
            twice (same id or same file), a missing image file, an annotation of an unknown
            image or category, a box outside its image or of zero size, categories that differ
            from ``categories``; each names the file and the entry.

    Example:
        >>> val = read_coco_split("data/det/val/annotations.json", categories=[(1, "cat")])
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    document = _load(path)
    file_categories = _categories(document, path)
    if categories is not None and file_categories != list(categories):
        raise DataError(f"{path}: categories {file_categories!r} differ from the training "
                        f"split's {list(categories)!r}; every split must list the same ones")
    label_of = {cid: k for k, (cid, _) in enumerate(file_categories)}
    images = _list(document, "images", path)
    if not images:
        raise DataError(f"{path} lists no images; add entries to \"images\"")
    order, by_id, files = [], {}, set()
    for i, entry in enumerate(images):
        where = f"{path}, images[{i}]"
        image_id = _key(entry, "id", int, where)
        file_name = _key(entry, "file_name", str, where)
        if image_id in by_id:
            raise DataError(f"{where}: image id {image_id} is listed twice; give each image "
                            "one entry with a unique id")
        if file_name in files:
            raise DataError(f"{where}: file {file_name!r} is listed twice; give each image "
                            "one entry")
        by_id[image_id] = []
        files.add(file_name)
        order.append((image_id, file_name))
    for i, entry in enumerate(_list(document, "annotations", path)):
        where = f"{path}, annotations[{i}]"
        image_id = _key(entry, "image_id", int, where)
        category_id = _key(entry, "category_id", int, where)
        bbox = _key(entry, "bbox", list, where)
        crowd = entry.get("iscrowd", 0)
        if image_id not in by_id:
            raise DataError(f"{where}: image_id {image_id} is not in \"images\"")
        if category_id not in label_of:
            raise DataError(f"{where}: unknown category_id {category_id}; the categories are "
                            f"{[cid for cid, _ in file_categories]!r}")
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and math.isfinite(v) for v in bbox):
            raise DataError(f"{where}: bbox must be 4 finite numbers [x, y, width, height], "
                            f"got {bbox!r}")
        if crowd not in (0, 1, True, False):
            raise DataError(f"{where}: iscrowd must be 0 or 1, got {crowd!r}")
        by_id[image_id].append((label_of[category_id], bbox, bool(crowd), where))
    arrays, names, objects = [], [], []
    for image_id, file_name in order:
        file = root / file_name
        if not file.resolve().is_relative_to(root.resolve()):
            raise DataError(f"{path}: file_name {file_name!r} (id {image_id}) points outside "
                            f"{root}; name files relative to the image folder")
        if not file.is_file():
            raise DataError(f"{path}: image file {file_name!r} (id {image_id}) not found under "
                            f"{root}; pass image_root if the images are elsewhere")
        pixels = decode_image(file, channels=channels, max_pixels=max_pixels)
        _, h, w = pixels.shape
        if size is None:
            size = (h, w)
        sx, sy = size[1] / w, size[0] / h
        boxes = []
        for label, (x, y, bw, bh), crowd, where in by_id[image_id]:
            if not (x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h):
                raise DataError(f"{where}: bbox {[x, y, bw, bh]!r} of {file_name!r} is not "
                                f"inside the {w}x{h} image with width > 0 and height > 0 "
                                "([x, y, width, height] pixels)")
            boxes.append((label, [x * sx, y * sy, (x + bw) * sx, (y + bh) * sy], crowd))
        if (h, w) != tuple(size):
            pixels = _stretch(pixels, size)
        arrays.append(pixels)
        names.append(file_name)
        objects.append(boxes)
    if channels is None and len({a.shape[0] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    n, m = len(arrays), max(len(o) for o in objects)
    labels = torch.full((n, m), -1, dtype=torch.int64)
    boxes = torch.zeros(n, m, 4, dtype=torch.float32)
    ignore = torch.zeros(n, m, dtype=torch.bool)
    for i, found in enumerate(objects):
        for j, (label, box, crowd) in enumerate(found):
            labels[i, j], ignore[i, j] = label, crowd
            boxes[i, j] = torch.tensor(box)
    return AnnotatedData("detect", torch.from_numpy(np.stack(arrays)),  # -> (N, C, H, W)
                         [name for _, name in file_categories], labels=labels, boxes=boxes,
                         ignore=ignore, names=names)


def read_coco(root, *, image_root=None, val_split: float = 0.1, seed: int = 0, size=None,
              channels: int | None = None,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedSplits:
    """Read a COCO detection dataset: ``train/``, ``val/`` (optionally ``test/``), or one JSON.

    ``root`` is a folder whose splits each hold an ``annotations.json`` and its images, a
    folder with only ``annotations.json`` (or ``train/annotations.json``), or a JSON file.
    Without a val split, a seeded ``val_split`` share of the training images is held out.

    Args:
        root: the dataset folder or JSON file.
        image_root: the folder the ``file_name`` entries are relative to; None: each JSON's.
        val_split: share held out as val when there is no val split, in (0, 1).
        seed: seed of that split.
        size: (H, W) of every image; None: the first training image's size.
        channels: 1 or 3; None: 3 if any training image is in colour, else 1.
        max_pixels: refuse images with more pixels than this.

    Raises:
        DataError: no annotations JSON where expected, or any error of :func:`read_coco_split`.

    Example:
        >>> splits = read_coco("data/det")
        >>> splits.task
        'detect'
    """
    root = Path(root)
    if root.is_file():
        jsons, image_root_of = {"train": root}, {"train": image_root}
    else:
        folders = split_folders(root)
        if not folders:
            folders = {"train": root / "train" if (root / "train").is_dir() else root}
        jsons = {split: folder / ANNOTATIONS_JSON for split, folder in folders.items()}
        image_root_of = {split: image_root for split in jsons}
    train = read_coco_split(jsons["train"], image_root=image_root_of["train"], size=size,
                            channels=channels, max_pixels=max_pixels)
    categories = _categories(_load(jsons["train"]), jsons["train"])
    parts = {}
    for split in ("val", "test"):
        if split in jsons:
            parts[split] = read_coco_split(jsons[split], image_root=image_root_of[split],
                                           categories=categories, size=train.input_shape[1:],
                                           channels=train.input_shape[0],
                                           max_pixels=max_pixels)
    val = parts.get("val")
    return with_val_split(train, val, parts.get("test"), val_split=val_split, seed=seed,
                          source=root)


def write_coco(data: AnnotatedSplits | AnnotatedData, folder) -> Path:
    """Write detection data as PNG images and COCO ``annotations.json`` per split.

    An :class:`AnnotatedSplits` gives ``folder/train``, ``folder/val`` and ``folder/test``; an
    :class:`AnnotatedData` is written as ``folder/train``. Category ids are 1..K in label
    order; ``ignore`` objects get ``iscrowd`` 1; padding (label -1) is left out.

    Args:
        data: detection data.
        folder: where to write (created if needed).

    Raises:
        ValueError: data that is not of the ``"detect"`` task, or two images with one name.

    Example:
        >>> write_coco(splits, "data/det")
        PosixPath('data/det')
    """
    folder = Path(folder)
    parts = parts_to_write(data, "detect", "write_coco")
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(data.class_names)]
    for split, part in parts.items():
        target = folder / split
        target.mkdir(parents=True, exist_ok=True)
        filenames = [_png_name(name) for name in part.names]
        if len(set(filenames)) != len(filenames):
            raise ValueError(f"the names of the {split} images are not unique as files")
        images, annotations = [], []
        for i, (filename, image) in enumerate(zip(filenames, part.images)):
            pixels = image.numpy()
            if pixels.shape[0] == 1:
                picture = Image.fromarray(pixels[0], mode="L")
            else:
                picture = Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB")  # CHW -> HWC
            picture.save(target / filename)
            images.append({"id": i + 1, "file_name": filename, "width": int(pixels.shape[2]),
                           "height": int(pixels.shape[1])})
            for label, box, crowd in zip(part.labels[i], part.boxes[i], part.ignore[i]):
                if int(label) < 0:
                    continue
                x0, y0, x1, y1 = (float(v) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                    "category_id": int(label) + 1,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                                    "area": (x1 - x0) * (y1 - y0), "iscrowd": int(crowd)})
        document = {"images": images, "annotations": annotations, "categories": categories}
        (target / ANNOTATIONS_JSON).write_text(json.dumps(document))
    return folder


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path} not found: a COCO split needs an {ANNOTATIONS_JSON} (instances "
                        "JSON with images, annotations and categories)")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(document, dict):
        raise DataError(f"{path} must hold a JSON object with images, annotations and "
                        f"categories, got a {type(document).__name__}")
    return document


def _list(document: dict, key: str, path: Path) -> list:
    value = document.get(key)
    if not isinstance(value, list):
        raise DataError(f"{path}: key {key!r} must be a list, got {type(value).__name__}; a "
                        "COCO instances JSON has images, annotations and categories")
    return value


def _key(entry, key: str, kind: type, where: str):
    if not isinstance(entry, dict):
        raise DataError(f"{where} must be an object, got {entry!r}")
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{where}: key {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _categories(document: dict, path: Path) -> list[tuple[int, str]]:
    found = []
    for i, entry in enumerate(_list(document, "categories", path)):
        where = f"{path}, categories[{i}]"
        found.append((_key(entry, "id", int, where), _key(entry, "name", str, where)))
    ids = [cid for cid, _ in found]
    if not found or len(set(ids)) != len(ids):
        raise DataError(f"{path}: categories must list at least one category with distinct ids, "
                        f"got ids {ids!r}")
    return found


def _png_name(name: str) -> str:
    base = Path(name).name or "image"
    return base if base.lower().endswith(".png") else base + ".png"


def _stretch(pixels: np.ndarray, size) -> np.ndarray:
    """Resize a uint8 (C, H, W) array to (C, *size) bilinearly (Pillow), ignoring the aspect."""
    h, w = int(size[0]), int(size[1])
    channels = [np.asarray(Image.fromarray(c).resize((w, h), Image.Resampling.BILINEAR))
                for c in pixels]
    return np.stack(channels)  # C x (H, W) -> (C, H, W)
