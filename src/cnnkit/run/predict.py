"""Classify image files with a trained run: ``cnnkit predict`` (and ``cnnkit embed``'s inputs).

Starts from :func:`cnnkit.run.load_run`, so it uses the run's own class names, input size and
normalisation.
"""
from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data.folder import decode_image
from cnnkit.run.folder import LoadedModel

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Image files from file names, folders (searched recursively) and glob patterns, sorted.

    Raises:
        FileNotFoundError: an input matches no image file.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True)
                           if Path(p).is_file())
        if not found:
            raise FileNotFoundError(f"no image files found for {item!r}; give a file, a folder "
                                    f"or a glob such as 'photos/*.png'")
        files.extend(found)
    return files


def predict_files(loaded: LoadedModel, files: Sequence[Path], *, top: int = 3,
                  batch_size: int = 256, tta: bool | None = None) -> list[dict[str, Any]]:
    """Classify image files in batches: ``[{"file", "predictions": [{"class", "probability"}]}]``.

    ``tta`` None: as the run was trained to be tested (its config's ``tta``), as ``evaluate``.

    Raises:
        DataError: a file that cannot be decoded (the message names it).
    """
    c, h, w = loaded.input_shape
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images = np.stack([decode_image(f, channels=c, size=(h, w)) for f in chunk])  # (B, C, H, W)
        top_k = loaded.predict_top(torch.from_numpy(images), k=top, tta=tta)
        for f, preds in zip(chunk, top_k):
            results.append({"file": str(f), "predictions": [
                {"class": name, "probability": p} for name, p in preds]})
    return results
