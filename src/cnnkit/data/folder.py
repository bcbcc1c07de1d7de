"""Reader for image folders: ``root/<class name>/<image file>``, one sub-folder per class.

Rules (the ones a user can rely on):

- Class names are the sub-folder names, sorted; label ``k`` is the k-th name. Files in a class
  folder are read in sorted order. Names are only ever used as strings, never as paths to write.
- Images are the files whose extension is one of ``IMAGE_EXTENSIONS`` (any case). Hidden files
  and folders (names starting with ``.``, e.g. ``.ipynb_checkpoints``, ``._photo.jpg``) are
  ignored; so are nested sub-folders.
- Channels: ``channels=1`` converts to grayscale (Pillow's ITU-R 601-2 luma), ``channels=3`` to
  RGB (alpha is dropped). Default: 3 if any image is in colour, else 1. 16-bit images keep their
  8 high bits. EXIF orientation is applied.
- Size: with ``size=None`` every image must already have the same size (otherwise an error shows
  two files that differ). With ``size=(H, W)`` (or an int for a square) every image is resized:
  ``"crop"`` (default) scales the shorter side to the target and centre-crops the rest,
  ``"stretch"`` scales to H×W ignoring the aspect ratio, ``"pad"`` scales the longer side to the
  target and letterboxes with zeros (black). A JPEG at least four times the target on both
  sides is first decoded at 1/2, 1/4 or 1/8 scale by libjpeg (never below twice the target),
  as Pillow's ``thumbnail`` does.
- Safety: any image with more than ``max_pixels`` pixels (default ``DEFAULT_MAX_PIXELS``, the
  README's 40 megapixels) is refused from its header, before it is decoded, with a DataError
  naming the file, its size and the limit. Every reader of cnnkit.data (image folders, CSV,
  box CSV, COCO, VOC, masks, streaming) opens files through :func:`open_image_checked`, so this
  is the limit enforced everywhere: Pillow's own decompression-bomb check (a warning above
  ~89 Mpx, an error above ~179 Mpx, ``Image.MAX_IMAGE_PIXELS``) is switched off while the header
  is read, so it neither fires first nor overrides a ``max_pixels`` the caller raised.
- A file that makes Pillow fail (any of ``DECODE_ERRORS``: OSError, SyntaxError, ValueError,
  MemoryError for a header claiming a huge block, and the TypeError/IndexError/struct.error that
  fuzzing saw escape Pillow's plugins) is a DataError naming the file, never a crash.
- Unreadable files (truncated, corrupt, too large): with ``strict=False`` they are skipped, each
  with a logged warning, and listed in ``ImageData.skipped``; ``strict=True`` raises on the first.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from cnnkit._checks import check_positive_int, standardize_tuple
from cnnkit.data.dataset import DataSplits, ImageData
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")
RESIZE_MODES = ("crop", "stretch", "pad")
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: the documented limit of every reader
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SPLIT_FOLDER_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# Image.info keys in which Pillow's getexif looks for an orientation (besides TIFF tags).
_ORIENTATION_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")
_RESAMPLE = Image.Resampling.BILINEAR
# What Pillow raises on corrupt or hostile files: OSError/SyntaxError/ValueError as documented,
# MemoryError for a header that claims a huge block, and what fuzzing saw leak from its plugins
# (a TIFF whose strip offset is a float raises TypeError while loading).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, MemoryError, TypeError, IndexError,
                  struct.error)
# Held while Pillow's MAX_IMAGE_PIXELS is switched off for one header read, so that threads
# opening images at once restore the caller's value, never each other's None.
_PILLOW_LIMIT_LOCK = threading.Lock()


def _is_image(path: Path) -> bool:
    return (not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS
            and path.is_file())


def _check_options(size, channels, resize, max_pixels) -> tuple[int, int] | None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None (automatic), 1 (grayscale) or 3 (RGB), "
                         f"got {channels!r}")
    check_positive_int(max_pixels, "max_pixels")
    return None if size is None else standardize_tuple(size, 2, "size")


def list_image_folder(root) -> tuple[list[tuple[Path, int]], list[str]]:
    """List the image files of ``root/<class>/`` with their labels, without decoding any.

    Args:
        root: folder with one sub-folder per class.

    Returns:
        ``(files, class_names)``: files is a list of ``(path, label)`` in class then file-name
        order; class_names are the sorted sub-folder names.

    Raises:
        DataError: root missing, no class sub-folders, or a class folder without images.

    Example:
        >>> files, class_names = list_image_folder("data/pets/train")
        >>> class_names
        ['cat', 'dog']
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a folder; "
                        "check the path")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                        key=lambda p: p.name)
    if not class_dirs:
        loose = [p.name for p in root.iterdir() if _is_image(p)]
        hint = f" (it has {len(loose)} images directly inside)" if loose else ""
        raise DataError(f"{root} has no class sub-folders{hint}; put each class's images in "
                        f"{root}/<class name>/")
    files, class_names = [], []
    for label, class_dir in enumerate(class_dirs):
        images = sorted((p for p in class_dir.iterdir() if _is_image(p)), key=lambda p: p.name)
        if not images:
            raise DataError(f"class folder {class_dir.name!r} in {root} has no images (looked for "
                            f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
        class_names.append(class_dir.name)
        files.extend((path, label) for path in images)
    return files, class_names


def split_folders(root) -> dict[str, Path]:
    """The split sub-folders of ``root``: ``train/`` and ``val/`` (or valid/validation) / ``test/``.

    Returns ``{}`` unless there is a ``train/`` folder and at least one of the others.

    Example:
        >>> split_folders("data/pets")
        {'train': PosixPath('data/pets/train'), 'val': PosixPath('data/pets/val')}
    """
    root = Path(root)
    found = {}
    for split, names in SPLIT_FOLDER_NAMES.items():
        match = next((root / name for name in names if (root / name).is_dir()), None)
        if match is not None:
            found[split] = match
    return found if "train" in found and len(found) > 1 else {}


def open_image_checked(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, *,
                       what: str = "image") -> Image.Image:
    """Open an image lazily (header only) and refuse it if it has more than ``max_pixels``.

    The one pixel-limit check of every reader in cnnkit.data. Pillow's decompression-bomb
    check is off during the header read (restored after it), so ``max_pixels`` is the limit
    that applies, with its own message, whatever the image's size. Pixels are read later by
    the caller (``image.load()``, ``np.asarray``), only once this check has passed.

    Args:
        path: the image file.
        max_pixels: the largest width × height accepted (default 40 megapixels).
        what: what the file is, for messages (``"image"``, ``"mask"``).

    Raises:
        DataError: the file is not an image Pillow can open, or its header claims more than
            ``max_pixels`` pixels (the message names the file, W×H and the limit).

    Example:
        >>> with open_image_checked("cat.png") as image:
        ...     image.size
        (640, 480)
    """
    try:
        with _PILLOW_LIMIT_LOCK:
            pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit
    except DECODE_ERRORS as e:
        raise DataError(f"cannot read {what} {path}: {e}") from e
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise DataError(f"refusing to decode {what} {path}: {width}x{height} = "
                        f"{width * height} pixels is more than max_pixels={max_pixels} (a "
                        "decompression bomb or a huge image); shrink the image or raise "
                        "max_pixels")
    return image


def _display_size(image: Image.Image) -> tuple[int, int]:
    """(H, W) of the image once its EXIF orientation is applied."""
    width, height = image.size
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return (width, height) if orientation in _ROTATED else (height, width)


def _orient(image: Image.Image) -> Image.Image:
    """Decode the pixels and apply the EXIF orientation (Pillow's ``exif_transpose``).

    Pillow's ``getexif`` reads an orientation from an EXIF block, ImageMagick's raw-profile
    text, XMP or TIFF tags; an image with none of them (most PNG, every BMP) is upright, and
    skipping ``getexif`` then saved ~2 µs of a ~35 µs 28x28 PNG decode. ``exif_transpose`` copies
    the image even when there is nothing to turn, so it only runs for an orientation other than
    1 (~4 µs more). Measured in one process on bench/data_loader.py's MNIST PNGs.
    """
    image.load()  # PNG can carry its eXIf chunk after the pixels: read it before looking
    if not hasattr(image, "tag_v2") and not any(key in image.info for key in _ORIENTATION_KEYS):
        return image
    if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _draft(image: Image.Image, size: tuple[int, int]) -> None:
    """Let libjpeg decode a JPEG at 1/2, 1/4 or 1/8 scale when it stays at least twice ``size``.

    Only before the pixels are read, and only when the reduced image keeps both sides at least
    twice the target (Pillow's ``thumbnail`` does the same with ``reducing_gap=2``): the
    resize rule then finishes from an image twice the target, so results differ from a full
    decode by about one grey level on average. 384x512 JPEGs to 64x64 decoded 1.4x as fast
    this way (bench/data_loader.py, JPEG table: 2,352 vs 1,642 images/s in 2 processes).
    """
    if image.format not in ("JPEG", "MPO"):  # the only formats whose draft() does anything
        return
    height, width = size
    if image.getexif().get(ExifTags.Base.Orientation, 1) in _ROTATED:
        height, width = width, height  # the file stores the image turned by 90 degrees
    if min(image.width // (2 * width), image.height // (2 * height)) >= 2:
        image.draft(None, (2 * width, 2 * height))


def _convert(image: Image.Image, channels: int | None) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        high_bits = np.asarray(image, dtype=np.uint32) >> 8  # 16-bit values -> 0..255
        image = Image.fromarray(high_bits.astype(np.uint8), mode="L")
    if channels is None:
        channels = 1 if image.mode in GRAYSCALE_MODES else 3
    mode = "L" if channels == 1 else "RGB"
    # convert() to the image's own mode is a copy; skipping it was measured ~4 µs per 28x28 PNG.
    return image if image.mode == mode else image.convert(mode)


def _resize(image: Image.Image, size: tuple[int, int], resize: str) -> Image.Image:
    height, width = size
    if image.size == (width, height):
        return image
    if resize == "stretch":
        return image.resize((width, height), _RESAMPLE)
    if resize == "crop":
        return ImageOps.fit(image, (width, height), _RESAMPLE)
    return ImageOps.pad(image, (width, height), _RESAMPLE, color=0)


def decode_image(path, *, channels: int | None = None, size=None, resize: str = "crop",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one image file with Pillow into a uint8 (C, H, W) array.

    Args:
        path: a JPEG, PNG, BMP, WebP or GIF file (GIF: first frame).
        channels: 1 (grayscale), 3 (RGB) or None (1 for grayscale files, 3 otherwise).
        size: (H, W) or an int for H = W; None keeps the file's size.
        resize: ``"crop"``, ``"stretch"`` or ``"pad"`` (see the module docstring).
        max_pixels: refuse images with more pixels than this, before decoding.

    Shape:
        (C, H, W): the file's (H, W) after EXIF rotation, or ``size``.

    Raises:
        ValueError/TypeError: bad channels, size, resize or max_pixels.
        DataError: unreadable, truncated or too large image (the message names the file).

    Example:
        >>> decode_image("cat.jpg", channels=3, size=32).shape
        (3, 32, 32)
    """
    size = _check_options(size, channels, resize, max_pixels)
    return decode_image_into(path, None, channels=channels, size=size, resize=resize,
                             max_pixels=max_pixels)


def decode_image_into(path, out: np.ndarray | None, *, channels: int | None,
                      size: tuple[int, int] | None, resize: str,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`decode_image` writing into ``out`` (one image of a preallocated batch), with the
    options already checked (``size`` an ``(H, W)`` tuple): the batch decoder of
    :class:`~cnnkit.data.stream.StreamingLoader` checks them once, not per file.

    Shape:
        ``out``: uint8 (C, H, W) with C = ``channels`` and (H, W) = ``size``; returned filled.
        Without ``out``, a new (C, H, W) array as from :func:`decode_image`.

    Raises:
        DataError: unreadable, truncated or too large image (the message names the file).
    """
    # ``path`` goes to Pillow as given: building a Path per file was measured to add ~5 µs to a
    # ~35 µs 28x28 PNG decode.
    with open_image_checked(path, max_pixels) as image:
        try:
            return image_to_array(image, channels=channels, size=size, resize=resize, out=out)
        except DECODE_ERRORS as e:
            raise DataError(f"cannot decode image {path}: {e}") from e


def image_to_array(image: Image.Image, *, channels: int | None, size: tuple[int, int] | None,
                   resize: str = "crop", out: np.ndarray | None = None) -> np.ndarray:
    """An opened Pillow image -> uint8 (C, H, W), by the rule of this module.

    EXIF orientation applied, converted to grey (luma) or RGB, resized by ``resize``. Used by
    :func:`decode_image` and by the server for uploaded bytes. Pillow may raise any of
    :data:`DECODE_ERRORS` on a corrupt image.

    Args:
        out: optional uint8 (C, H, W) array to write into (e.g. ``batch[i]``); it must have the
            shape the image comes out with.

    Shape:
        (C, H, W): the image's (H, W) after EXIF rotation, or ``size``.
    """
    if size is not None:
        _draft(image, size)
    converted = _convert(_orient(image), channels)
    if size is not None:
        converted = _resize(converted, size, resize)
    width, height = converted.size
    c = 1 if converted.mode == "L" else 3
    if out is None:
        out = np.empty((c, height, width), dtype=np.uint8)
    elif out.shape != (c, height, width):
        raise ValueError(f"out has the shape {out.shape!r} but the image decodes to "
                         f"{(c, height, width)!r} (C, H, W)")
    # tobytes + frombuffer instead of np.asarray(image): the same bytes without the array
    # interface's detour, measured ~1 µs faster per 28x28 PNG.
    pixels = np.frombuffer(converted.tobytes(), dtype=np.uint8)
    if c == 1:
        out[0] = pixels.reshape(height, width)  # (H*W,) -> (H, W)
    else:
        out[...] = pixels.reshape(height, width, 3).transpose(2, 0, 1)  # (H*W*3,) -> (C, H, W)
    return out


def _skip_or_raise(error: DataError, path: Path, strict: bool, skipped: list[str]) -> None:
    if strict:
        raise error
    logger.warning("skipping %s: %s", path, error)
    skipped.append(str(path))


def _common_size(headers: list[tuple[Path, int, str, tuple[int, int]]], source: str):
    first_path, _, _, first_size = headers[0]
    for path, _, _, hw in headers:
        if hw != first_size:
            raise DataError(
                f"images in {source} have different sizes, e.g. {first_path} is "
                f"{first_size[0]}x{first_size[1]} (HxW) and {path} is {hw[0]}x{hw[1]}; pass "
                f"size=(H, W) (e.g. size={first_size[0]}) to resize them all "
                f"(resize='crop', 'stretch' or 'pad')"
            )
    return first_size


def load_image_files(files: Sequence[tuple[Path, int]], class_names: Sequence[str], *,
                     size=None, channels: int | None = None, resize: str = "crop",
                     strict: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                     source: str = "") -> ImageData:
    """Decode a list of ``(path, label)`` image files into one ImageData.

    The headers are read first (cheap) to settle the channels and the common size, then every
    image is decoded into one preallocated uint8 array. See the module docstring for the rules.

    Args:
        files: ``(path, label)`` pairs, e.g. from ``list_image_folder``.
        class_names: one name per label.
        size, channels, resize, strict, max_pixels: as in ``load_image_folder``.
        source: name of the dataset in messages.

    Shape:
        images (N, C, H, W) with N = len(files) - len(skipped).

    Raises:
        DataError: mixed sizes without ``size``, no readable image, or (strict) a bad file.
    """
    size = _check_options(size, channels, resize, max_pixels)
    source = source or "the image list"
    skipped: list[str] = []
    headers = []
    for path, label in files:
        try:
            with open_image_checked(Path(path), max_pixels) as image:
                # The upright size is needed only to agree on a common size; getexif fully
                # decodes a PNG (its eXIf chunk may follow the pixels), so skip it otherwise.
                shape = _display_size(image) if size is None else None
                headers.append((Path(path), label, image.mode, shape))
        except DataError as e:
            _skip_or_raise(e, Path(path), strict, skipped)
        except DECODE_ERRORS as e:  # e.g. a corrupt EXIF block
            _skip_or_raise(DataError(f"cannot read image {path}: {e}"), Path(path), strict,
                           skipped)
    if not headers:
        raise DataError(f"no readable images in {source} ({len(skipped)} skipped)")
    if channels is None:
        channels = 1 if all(mode in GRAYSCALE_MODES for _, _, mode, _ in headers) else 3
    target = size if size is not None else _common_size(headers, source)

    images = np.empty((len(headers), channels, *target), dtype=np.uint8)
    labels = np.empty(len(headers), dtype=np.int64)
    count = 0
    for path, label, _, _ in headers:
        try:
            images[count] = decode_image(path, channels=channels, size=target, resize=resize,
                                         max_pixels=max_pixels)
        except DataError as e:
            _skip_or_raise(e, path, strict, skipped)
            continue
        labels[count] = label
        count += 1
    if count == 0:
        raise DataError(f"no readable images in {source} ({len(skipped)} skipped)")
    if skipped:
        logger.warning("skipped %d of %d files in %s that could not be read (first: %s); pass "
                       "strict=True to stop at the first one", len(skipped), len(files), source,
                       skipped[0])
    logger.info("read %d images (%dx%dx%d) from %s", count, target[0], target[1], channels, source)
    return ImageData(torch.from_numpy(images[:count]), torch.from_numpy(labels[:count]),
                     list(class_names), source=source, skipped=skipped)


def load_image_folder(root, *, size=None, channels: int | None = None, resize: str = "crop",
                      strict: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageData:
    """Load ``root/<class name>/*.{jpg,jpeg,png,bmp,webp,gif}`` into memory.

    Args:
        root: folder with one sub-folder per class.
        size: (H, W) or an int; None requires every image to have the same size.
        channels: 1, 3 or None (3 if any image is in colour, else 1).
        resize: ``"crop"`` (default), ``"stretch"`` or ``"pad"``; used only when sizes differ
            from ``size``.
        strict: raise on the first unreadable image instead of skipping it.
        max_pixels: refuse images with more pixels than this, before decoding.

    Shape:
        images (N, C, H, W); labels (N,) are indices into the sorted class folder names.

    Raises:
        DataError: root missing, no class folders, an empty class folder, mixed sizes without
            ``size``, no readable image, or (strict) an unreadable one.

    Example:
        >>> data = load_image_folder("data/pets/train", size=64, channels=3)
        >>> data.class_names, data.input_shape
        (['cat', 'dog'], (3, 64, 64))
    """
    files, class_names = list_image_folder(root)
    return load_image_files(files, class_names, size=size, channels=channels, resize=resize,
                            strict=strict, max_pixels=max_pixels, source=str(root))


def load_image_folder_splits(root, *, size=None, channels: int | None = None,
                             resize: str = "crop", strict: bool = False,
                             max_pixels: int = DEFAULT_MAX_PIXELS) -> DataSplits:
    """Load ``root/train/<class>/...`` plus ``root/val/`` (or valid/) and/or ``root/test/``.

    Every split must have the same class folders. The channels settled on ``train`` (when
    ``channels=None``) are used for the other splits; image sizes must agree (pass ``size``).

    Args:
        root: folder holding the split folders; other arguments as in ``load_image_folder``.

    Raises:
        DataError: no train folder with a val or test folder beside it, or splits whose class
            folders differ (the message lists the missing and extra classes).

    Example:
        >>> splits = load_image_folder_splits("data/pets", size=64)
        >>> len(splits.train), len(splits.val)
        (800, 200)
    """
    folders = split_folders(root)
    if not folders:
        raise DataError(f"{root} has no split folders: expected train/ and val/ (or valid/, "
                        "validation/) and/or test/; for a single folder of class folders use "
                        "load_image_folder")
    listings = {split: list_image_folder(folder) for split, folder in folders.items()}
    train_classes = listings["train"][1]
    for split, (_, classes) in listings.items():
        if classes != train_classes:
            missing = sorted(set(train_classes) - set(classes))
            extra = sorted(set(classes) - set(train_classes))
            raise DataError(f"{folders[split]} has different class folders from "
                            f"{folders['train']}: missing {missing}, extra {extra}; every split "
                            "needs the same class folders")
    parts = {}
    for split, (files, classes) in listings.items():
        parts[split] = load_image_files(files, classes, size=size, channels=channels,
                                        resize=resize, strict=strict, max_pixels=max_pixels,
                                        source=str(folders[split]))
        channels = parts["train"].input_shape[0]
    return DataSplits(**parts)
