"""Reader and writer of segmentation folders: a class index per pixel.

Layout (``train/`` and ``val/``, optionally ``test/``; without ``val/`` a seeded split of
``train/`` is held out) — the layout fastai uses for CamVid::

    ROOT/
      classes.txt            one class name per line, in index order (0 = background usually)
      train/  images/  a.jpg  b.png ...
              masks/   a.png  b.png ...
      val/    images/ ...  masks/ ...

A mask is a single-channel PNG (mode ``L``, or a palette PNG of mode ``P`` read by its indices,
not its colours) with the stem of its image; a pixel's value is its class index, and 255
(:data:`~cnnkit.data.annotated.IGNORE_INDEX`) marks pixels not scored. Images are decoded by
:mod:`cnnkit.data.folder` (its size limits and channel rules); images whose size differs from
``size`` (default: the first training image's) are stretched to it bilinearly, their masks by
nearest neighbour.

Example:
    >>> write_masks(splits, "data/seg")
    PosixPath('data/seg')
    >>> read_masks("data/seg").train.masks.shape
    torch.Size([50, 96, 96])
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnkit.data.annotated import (AnnotatedData, AnnotatedSplits, IGNORE_INDEX, parts_to_write,
                                   with_val_split)
from cnnkit.data.folder import (DECODE_ERRORS, DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS,
                                decode_image, open_image_checked, split_folders)
from cnnkit.errors import DataError

CLASSES_TXT = "classes.txt"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
MASK_MODES = ("L", "P")


def read_mask_split(folder, *, class_names: list[str], size=None, channels: int | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedData:
    """Read one split folder (``images/`` + ``masks/``) as segmentation data.

    Args:
        folder: the split folder.
        class_names: the classes, in index order (from ``classes.txt``).
        size: (H, W) to bring every image and mask to; None: the first image's size.
        channels: 1 or 3; None: 3 if any image is in colour, else 1.
        max_pixels: refuse images and masks with more pixels than this.

    Shape:
        images (N, C, H, W) uint8, masks (N, H, W) uint8 with values in [0, K) or 255.

    Raises:
        DataError: no ``images/`` or ``masks/``, an image without a mask or a mask without an
            image, a mask that is not a single-channel PNG (e.g. RGB), a mask whose size
            differs from its image, a mask value beyond the classes; each names the file.

    Example:
        >>> val = read_mask_split("data/seg/val", class_names=["background", "digit"])
    """
    folder = Path(folder)
    image_dir, mask_dir = folder / IMAGES_DIR, folder / MASKS_DIR
    for path in (image_dir, mask_dir):
        if not path.is_dir():
            raise DataError(f"{path} not found: a segmentation split folder needs "
                            f"{IMAGES_DIR}/ and {MASKS_DIR}/ with the same file stems")
    images = _by_stem(image_dir, IMAGE_EXTENSIONS)
    masks = _by_stem(mask_dir, (".png",))
    for stem in sorted(images):
        if stem not in masks:
            raise DataError(f"image {images[stem]} has no mask: add {mask_dir / (stem + '.png')}")
    for stem in sorted(masks):
        if stem not in images:
            raise DataError(f"mask {masks[stem]} has no image in {image_dir}: add the image or "
                            "remove the mask")
    if not images:
        raise DataError(f"{image_dir} holds no images; add images and their masks")
    arrays, mask_arrays, names = [], [], []
    for stem in sorted(images):
        pixels = decode_image(images[stem], channels=channels, max_pixels=max_pixels)
        mask = _read_mask(masks[stem], max_pixels)
        _, h, w = pixels.shape
        if mask.shape != (h, w):
            raise DataError(f"mask {masks[stem]} is {mask.shape[1]}x{mask.shape[0]} but its "
                            f"image {images[stem]} is {w}x{h}; masks must match their image")
        bad = (mask >= len(class_names)) & (mask != IGNORE_INDEX)
        if bad.any():
            raise DataError(f"mask {masks[stem]} has value {int(mask[bad][0])}, but "
                            f"{CLASSES_TXT} lists {len(class_names)} classes (values 0.."
                            f"{len(class_names) - 1}, or {IGNORE_INDEX} = ignore); add the "
                            f"class to {CLASSES_TXT} or fix the mask")
        if size is None:
            size = (h, w)
        if (h, w) != tuple(size):
            pixels = _resize(pixels, size, Image.Resampling.BILINEAR)
            mask = _resize(mask[None], size, Image.Resampling.NEAREST)[0]
        arrays.append(pixels)
        mask_arrays.append(mask)
        names.append(images[stem].name)
    if channels is None and len({a.shape[0] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    return AnnotatedData("segment", torch.from_numpy(np.stack(arrays)),  # -> (N, C, H, W)
                         list(class_names),
                         masks=torch.from_numpy(np.stack(mask_arrays)),  # -> (N, H, W)
                         names=names)


def read_masks(root, *, val_split: float = 0.1, seed: int = 0, size=None,
               channels: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> AnnotatedSplits:
    """Read a segmentation folder: ``classes.txt``, ``train/`` and ``val/`` (optionally ``test/``).

    Without a ``val/``, a seeded ``val_split`` share of the training images is held out.

    Args:
        root: the dataset folder.
        val_split: share held out as val when there is no ``val/``, in (0, 1).
        seed: seed of that split.
        size: (H, W) of every image; None: the first training image's size.
        channels: 1 or 3; None: 3 if any training image is in colour, else 1.
        max_pixels: refuse images with more pixels than this.

    Raises:
        DataError: no ``classes.txt`` (or an empty or repetitive one), no ``train/``, or any
            error of :func:`read_mask_split`.

    Example:
        >>> splits = read_masks("data/seg")
        >>> splits.task
        'segment'
    """
    root = Path(root)
    class_names = _read_classes(root)
    folders = split_folders(root)
    if not folders:
        if not (root / "train").is_dir():
            raise DataError(f"{root} has no train/ folder; a segmentation dataset needs "
                            f"train/{IMAGES_DIR} and train/{MASKS_DIR} (and optionally val/)")
        folders = {"train": root / "train"}
    train = read_mask_split(folders["train"], class_names=class_names, size=size,
                            channels=channels, max_pixels=max_pixels)
    options = dict(class_names=class_names, size=train.input_shape[1:],
                   channels=train.input_shape[0], max_pixels=max_pixels)
    val = read_mask_split(folders["val"], **options) if "val" in folders else None
    test = read_mask_split(folders["test"], **options) if "test" in folders else None
    return with_val_split(train, val, test, val_split=val_split, seed=seed,
                          source=root)


def write_masks(data: AnnotatedSplits | AnnotatedData, folder) -> Path:
    """Write segmentation data as PNG images and masks (the layout of :func:`read_masks`).

    An :class:`AnnotatedSplits` gives ``folder/train``, ``folder/val`` and ``folder/test``; an
    :class:`AnnotatedData` is written as ``folder/train``. ``folder/classes.txt`` keeps the class
    names. Each image ``NAME`` becomes ``images/STEM.png`` and ``masks/STEM.png`` (mode L).

    Args:
        data: segmentation data.
        folder: where to write (created if needed).

    Raises:
        ValueError: data that is not of the ``"segment"`` task, or two images with one stem.

    Example:
        >>> write_masks(splits, "data/seg")
        PosixPath('data/seg')
    """
    folder = Path(folder)
    parts = parts_to_write(data, "segment", "write_masks")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLASSES_TXT).write_text("".join(f"{name}\n" for name in data.class_names))
    for split, part in parts.items():
        stems = [Path(name).stem or "image" for name in part.names]
        if len(set(stems)) != len(stems):
            raise ValueError(f"the names of the {split} images are not unique as file stems")
        (folder / split / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        (folder / split / MASKS_DIR).mkdir(parents=True, exist_ok=True)
        for stem, image, mask in zip(stems, part.images, part.masks):
            pixels = image.numpy()
            if pixels.shape[0] == 1:
                picture = Image.fromarray(pixels[0], mode="L")
            else:
                picture = Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB")  # CHW -> HWC
            picture.save(folder / split / IMAGES_DIR / f"{stem}.png")
            Image.fromarray(mask.numpy(), mode="L").save(folder / split / MASKS_DIR / f"{stem}.png")
    return folder


def _read_classes(root: Path) -> list[str]:
    path = root / CLASSES_TXT
    if not path.is_file():
        raise DataError(f"{path} not found: a segmentation dataset needs a {CLASSES_TXT} with "
                        "one class name per line, in index order (line 1 = mask value 0)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path} must list distinct class names, one per line, got {names!r}")
    return names


def _by_stem(folder: Path, extensions) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() \
                or path.suffix.lower() not in extensions:
            continue
        if path.stem in found:
            raise DataError(f"{found[path.stem]} and {path} have the same stem; keep one file "
                            "per stem so each image has exactly one mask")
        found[path.stem] = path
    return found


def _read_mask(path: Path, max_pixels: int) -> np.ndarray:
    """A mask PNG -> uint8 (H, W) of class indices (palette PNGs by index, not colour)."""
    with open_image_checked(path, max_pixels, what="mask") as image:
        if image.mode not in MASK_MODES:
            raise DataError(f"mask {path} has mode {image.mode!r}; a mask must be a "
                            "single-channel PNG (mode 'L' or palette 'P') whose pixel value "
                            "is the class index, not a colour image")
        try:
            return np.array(image, dtype=np.uint8)
        except DECODE_ERRORS as e:
            raise DataError(f"cannot read mask {path}: {e}") from e


def _resize(pixels: np.ndarray, size, resample) -> np.ndarray:
    """Resize a uint8 (C, H, W) array to (C, *size) with Pillow, ignoring the aspect."""
    h, w = int(size[0]), int(size[1])
    channels = [np.asarray(Image.fromarray(c).resize((w, h), resample)) for c in pixels]
    return np.stack(channels)  # C x (H, W) -> (C, H, W)
