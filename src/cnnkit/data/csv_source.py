"""Reader for a CSV file that lists image files and their labels.

The CSV has a header row with a path column (``path``, ``filename``, ``file``, ``image``,
``image_path`` or ``filepath``) and a label column (``label``, ``class``, ``target`` or
``category``); names are matched without regard to case, other columns are ignored. Labels are
class names (sorted to give the label order) or, when every label is a whole number, class
indices (names ``"0"``..``"K-1"``).

Paths are relative to ``root`` (default: the CSV's folder). As a path-traversal defence every
path, once resolved (``..`` and symbolic links followed), must lie inside ``root``: an absolute
path or a ``..`` that leaves it is an error. Images are decoded with the image-folder rules
(``cnnkit.data.folder``): same ``size``, ``channels``, ``resize``, ``strict``, ``max_pixels``.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from cnnkit.data.dataset import ImageData, default_class_names
from cnnkit.data.folder import DEFAULT_MAX_PIXELS, load_image_files
from cnnkit.errors import DataError

PATH_COLUMNS = ("path", "filename", "file", "image", "image_path", "filepath")
LABEL_COLUMNS = ("label", "class", "target", "category")
_INTEGER = re.compile(r"\d+")


def _column(fields: list[str], choices: tuple[str, ...], what: str, path: Path) -> str:
    by_lower = {field.strip().lower(): field for field in fields}
    for choice in choices:
        if choice in by_lower:
            return by_lower[choice]
    raise DataError(f"{path} has no {what} column: its header is {fields!r}, expected one of "
                    f"{list(choices)} (any case)")


def _inside(path_text: str, root: Path, line: int, csv_path: Path) -> Path:
    if "\x00" in path_text:
        raise DataError(f"line {line} of {csv_path}: {path_text!r} contains a NUL character; "
                        "image paths must be plain file names")
    candidate = Path(path_text)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not full.is_relative_to(root):
        raise DataError(f"line {line} of {csv_path}: {path_text!r} points outside {root}; image "
                        "paths must stay inside root (absolute paths elsewhere and '..' that "
                        "leave it are refused) — move the images or pass root=")
    if not full.is_file():
        raise DataError(f"line {line} of {csv_path}: image {path_text!r} not found (looked at "
                        f"{full}); fix the path or pass root=")
    return full


def _labels(values: list[str], path: Path,
            allow_label_gaps: bool) -> tuple[list[int], list[str]]:
    if all(_INTEGER.fullmatch(v) for v in values):
        indices = [int(v) for v in values]
        return indices, default_class_names(np.array(indices), str(path),
                                            allow_label_gaps=allow_label_gaps)
    names = sorted(set(values))
    position = {name: k for k, name in enumerate(names)}
    return [position[v] for v in values], names


def load_csv(path, *, root=None, size=None, channels: int | None = None, resize: str = "crop",
             strict: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
             allow_label_gaps: bool = False) -> ImageData:
    """Load the images listed in a CSV file (path and label columns).

    Args:
        path: the CSV file (UTF-8, optional BOM).
        root: folder the image paths are relative to (default: the CSV's folder); no image
            may lie outside it.
        size, channels, resize, strict, max_pixels: as in ``load_image_folder``.
        allow_label_gaps: integer labels must be 0..K-1 without gaps; True accepts a gap (a
            K = max label + 1 model whose unused classes never appear; nothing is remapped).

    Shape:
        images (N, C, H, W), one per data row (minus skipped unreadable files); labels (N,).

    Raises:
        DataError: missing CSV, no path or label column, an empty cell, a path outside root
            or a missing image (each naming the line), integer labels with gaps (unless
            ``allow_label_gaps``), or anything the image reader rejects.

    Example:
        >>> data = load_csv("data/labels.csv", size=32)   # path,label / cats/1.jpg,cat / ...
        >>> data.class_names
        ['cat', 'dog']
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist; check the path")
    base = (Path(root) if root is not None else path.parent).resolve()
    if not base.is_dir():
        raise DataError(f"root {str(root)!r} is not a folder; give the folder the CSV paths "
                        "are relative to")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e}); save the CSV as UTF-8") from e
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fields = list(reader.fieldnames or [])
        path_column = _column(fields, PATH_COLUMNS, "path", path)
        label_column = _column(fields, LABEL_COLUMNS, "label", path)
        files, label_texts = [], []
        for row in reader:
            line = reader.line_num
            path_text = (row.get(path_column) or "").strip()
            label_text = (row.get(label_column) or "").strip()
            if not path_text or not label_text:
                raise DataError(f"line {line} of {path} has an empty {path_column!r} or "
                                f"{label_column!r} cell; every row needs a path and a label")
            files.append(_inside(path_text, base, line, path))
            label_texts.append(label_text)
    except csv.Error as e:
        raise DataError(f"{path} is not a valid CSV file (line {reader.line_num}: {e})") from e
    if not files:
        raise DataError(f"{path} has a header but no rows; add one row per image")
    labels, class_names = _labels(label_texts, path, allow_label_gaps)
    return load_image_files(list(zip(files, labels)), class_names, size=size, channels=channels,
                            resize=resize, strict=strict, max_pixels=max_pixels,
                            source=str(path))
