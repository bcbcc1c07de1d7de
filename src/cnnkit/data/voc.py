"""Reader and writer of Pascal VOC detection folders: XML annotations per image.

Layout::

    ROOT/
      Annotations/   ID.xml ...     <annotation> with <filename> and <object>s
      JPEGImages/    ID.jpg ...
      ImageSets/Main/train.txt  val.txt  [test.txt]   one image ID per line
      classes.txt                                     optional: class names in index order

Each ``<object>`` has a ``<name>`` (its class), a ``<bndbox>`` with ``xmin``, ``ymin``,
``xmax``, ``ymax`` in VOC's 1-based inclusive pixels (read as xyxy 0-based, max exclusive:
``(xmin - 1, ymin - 1, xmax, ymax)``) and an optional ``<difficult>`` 1, read as ``ignore``.
Class names are ``classes.txt``'s, else the sorted names of every listed object. Without a
``val.txt`` a seeded split of ``train.txt`` (or of every XML file when there is no
``train.txt``) is held out. XML with a ``<!DOCTYPE`` or ``<!ENTITY`` is refused before parsing
(entity-expansion attacks). Images are decoded by :mod:`cnnkit.data.folder`; images whose size
differs from ``size`` (default: the first training image's) are stretched, boxes scaled.

Example:
    >>> read_voc("data/VOC2007").train.boxes.shape
    torch.Size([2501, 42, 4])
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits, parts_to_write, with_val_split
from cnnkit.data.folder import DEFAULT_MAX_PIXELS, decode_image
from cnnkit.errors import DataError

CLASSES_TXT = "classes.txt"
_UNSAFE_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def read_voc(root, *, val_split: float = 0.1, seed: int = 0, size=None,
             channels: int | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedSplits:
    """Read a Pascal VOC folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``).

    Args:
        root: the dataset folder (e.g. ``VOCdevkit/VOC2007``).
        val_split: share held out as val when there is no ``val.txt``, in (0, 1).
        seed: seed of that split.
        size: (H, W) of every image; None: the first training image's size.
        channels: 1 or 3; None: 3 if any image of a split is in colour, else 1.
        max_pixels: refuse images with more pixels than this.

    Shape:
        images (N, C, H, W) uint8, labels (N, M) int64 (-1 = padding), boxes (N, M, 4) float32
        xyxy pixels, ignore (N, M) bool.

    Raises:
        DataError: no ``Annotations/``, a listed ID without its XML or image, XML with a
            DOCTYPE or ENTITY, malformed XML or a missing tag, a value that is not a number, a
            box outside its image or of zero size, a class not in ``classes.txt``; each names
            the file.

    Example:
        >>> splits = read_voc("data/VOC2007")
        >>> splits.task
        'detect'
    """
    root = Path(root)
    if not (root / "Annotations").is_dir():
        raise DataError(f"{root / 'Annotations'} not found: a VOC folder needs Annotations/ "
                        "(one XML per image), JPEGImages/ and ImageSets/Main/{train,val}.txt")
    lists = {split: root / "ImageSets" / "Main" / f"{split}.txt"
             for split in ("train", "val", "test")}
    ids = {split: _read_ids(path) for split, path in lists.items() if path.is_file()}
    if "train" not in ids:
        ids = {"train": sorted(p.stem for p in (root / "Annotations").glob("*.xml"))}
    for split, found in ids.items():
        if not found:
            raise DataError(f"{root} lists no {split} images; add IDs to "
                            f"ImageSets/Main/{split}.txt (or XML files to Annotations/)")
    parsed = {split: [_parse(root, image_id) for image_id in found]
              for split, found in ids.items()}
    class_names = _read_classes(root) or sorted(
        {obj[0] for records in parsed.values() for record in records for obj in record[2]})
    if not class_names:
        raise DataError(f"{root}: no objects and no {CLASSES_TXT}; add a {CLASSES_TXT} with "
                        "one class name per line")
    train = _build(parsed["train"], class_names, size, channels, max_pixels)
    options = (class_names, train.input_shape[1:], train.input_shape[0], max_pixels)
    val = _build(parsed["val"], *options) if "val" in parsed else None
    test = _build(parsed["test"], *options) if "test" in parsed else None
    return with_val_split(train, val, test, val_split=val_split, seed=seed,
                          source=root)


def write_voc(data: AnnotatedSplits | AnnotatedData, folder) -> Path:
    """Write detection data in the Pascal VOC layout of :func:`read_voc` (PNG images).

    Image IDs are each image's name without its extension; ``ignore`` objects get
    ``<difficult>1``; ``classes.txt`` keeps the class names.

    Args:
        data: detection data (an AnnotatedData is written as the train split).
        folder: where to write (created if needed).

    Raises:
        ValueError: data that is not of the ``"detect"`` task, or two images with one ID.

    Example:
        >>> write_voc(splits, "data/voc")
        PosixPath('data/voc')
    """
    folder = Path(folder)
    parts = parts_to_write(data, "detect", "write_voc")
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / CLASSES_TXT).write_text("".join(f"{name}\n" for name in data.class_names))
    seen: set[str] = set()
    for split, part in parts.items():
        stems = [Path(name).stem or "image" for name in part.names]
        if len(set(stems)) != len(stems) or seen & set(stems):
            raise ValueError(f"the names of the {split} images are not unique as VOC IDs")
        seen |= set(stems)
        (folder / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
        for i, stem in enumerate(stems):
            pixels = part.images[i].numpy()
            if pixels.shape[0] == 1:
                picture = Image.fromarray(pixels[0], mode="L")
            else:
                picture = Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB")  # CHW -> HWC
            picture.save(folder / "JPEGImages" / f"{stem}.png")
            annotation = ET.Element("annotation")
            ET.SubElement(annotation, "filename").text = f"{stem}.png"
            for label, box, hard in zip(part.labels[i], part.boxes[i], part.ignore[i]):
                if int(label) < 0:
                    continue
                obj = ET.SubElement(annotation, "object")
                ET.SubElement(obj, "name").text = part.class_names[int(label)]
                ET.SubElement(obj, "difficult").text = str(int(hard))
                bndbox = ET.SubElement(obj, "bndbox")
                x0, y0, x1, y1 = (float(v) for v in box)
                for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1),
                                   ("ymax", y1)):
                    ET.SubElement(bndbox, tag).text = f"{value:g}"
            ET.ElementTree(annotation).write(folder / "Annotations" / f"{stem}.xml")
    return folder


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _read_classes(root: Path) -> list[str] | None:
    path = root / CLASSES_TXT
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path} must list distinct class names, one per line, got {names!r}")
    return names


def _parse(root: Path, image_id: str):
    """(image path, xml path, [(name, [xmin, ymin, xmax, ymax] VOC, difficult)]) of one ID."""
    xml_path = root / "Annotations" / f"{image_id}.xml"
    if not xml_path.is_file():
        raise DataError(f"{xml_path} not found: image ID {image_id!r} is listed but has no "
                        "annotation; add the XML or remove the ID from ImageSets/Main")
    raw = xml_path.read_bytes()
    if _UNSAFE_XML.search(raw):
        raise DataError(f"{xml_path} contains a <!DOCTYPE> or <!ENTITY> declaration, refused "
                        "(entity expansion); remove it from the annotation")
    try:
        annotation = ET.fromstring(raw)
    except ET.ParseError as e:
        raise DataError(f"{xml_path} is not well-formed XML: {e}") from e
    filename = (annotation.findtext("filename") or "").strip() or f"{image_id}.jpg"
    image_path = root / "JPEGImages" / Path(filename).name
    if not image_path.is_file():
        raise DataError(f"{xml_path}: image {image_path} not found; put it in JPEGImages/")
    objects = []
    for k, obj in enumerate(annotation.findall("object")):
        where = f"{xml_path}, object {k}"
        name = (obj.findtext("name") or "").strip()
        bndbox = obj.find("bndbox")
        if not name or bndbox is None:
            raise DataError(f"{where}: each <object> needs a <name> and a <bndbox>")
        try:
            box = [float(bndbox.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax")]
            difficult = bool(int((obj.findtext("difficult") or "0").strip()))
        except (TypeError, ValueError):
            raise DataError(f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax and "
                            "<difficult> must be 0 or 1") from None
        objects.append((name, box, difficult, where))
    return image_path, xml_path, objects


def _build(records, class_names, size, channels, max_pixels) -> AnnotatedData:
    index = {name: k for k, name in enumerate(class_names)}
    arrays, names, objects = [], [], []
    for image_path, xml_path, found in records:
        pixels = decode_image(image_path, channels=channels, max_pixels=max_pixels)
        _, h, w = pixels.shape
        if size is None:
            size = (h, w)
        sx, sy = size[1] / w, size[0] / h
        boxes = []
        for name, (xmin, ymin, xmax, ymax), difficult, where in found:
            if name not in index:
                raise DataError(f"{where}: unknown class {name!r}; the classes are "
                                f"{list(class_names)!r} (from {CLASSES_TXT})")
            x0, y0 = xmin - 1, ymin - 1
            if not (0 <= x0 < xmax <= w and 0 <= y0 < ymax <= h):
                raise DataError(f"{where}: bndbox {[xmin, ymin, xmax, ymax]!r} is not inside "
                                f"the {w}x{h} image {image_path.name!r} with xmax >= xmin and "
                                "ymax >= ymin (VOC pixels, 1-based inclusive)")
            boxes.append((index[name], [x0 * sx, y0 * sy, xmax * sx, ymax * sy], difficult))
        if (h, w) != tuple(size):
            pixels = np.stack([np.asarray(Image.fromarray(c).resize(
                (int(size[1]), int(size[0])), Image.Resampling.BILINEAR)) for c in pixels])
        arrays.append(pixels)
        names.append(image_path.name)
        objects.append(boxes)
    if channels is None and len({a.shape[0] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    n, m = len(arrays), max(len(o) for o in objects)
    labels = torch.full((n, m), -1, dtype=torch.int64)
    boxes = torch.zeros(n, m, 4, dtype=torch.float32)
    ignore = torch.zeros(n, m, dtype=torch.bool)
    for i, found in enumerate(objects):
        for j, (label, box, difficult) in enumerate(found):
            labels[i, j], ignore[i, j] = label, difficult
            boxes[i, j] = torch.tensor(box)
    return AnnotatedData("detect", torch.from_numpy(np.stack(arrays)),  # -> (N, C, H, W)
                         list(class_names), labels=labels, boxes=boxes, ignore=ignore,
                         names=names)
