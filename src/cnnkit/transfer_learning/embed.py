"""Feature extraction: the penultimate-layer vector of every image, for any other classifier.

For every cnnkit model (zoo or ``Sequential``) this is
``model.forward_head(model.forward_features(x), pre_logits=True)``, the vector that enters the
classifier. For any other module it is the input of its last ``nn.Linear`` (see
:func:`~cnnkit.transfer_learning.head.head_path`), captured with a forward hook.

Example:
    >>> loaded = cnnkit.load("runs/digits")                                # doctest: +SKIP
    >>> feats = extract_features(loaded.model, images, normalization=loaded.normalization)  # doctest: +SKIP
    >>> feats.shape                                                        # doctest: +SKIP
    (1797, 64)
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.transfer_learning.head import head_path


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features feeding the classifier for a float batch ``x``.

    Shape:
        (N, C, H, W) -> (N, F), F = the classifier's input features.

    Example:
        >>> penultimate(create("resnet18", input_size=32), torch.zeros(2, 3, 32, 32)).shape  # doctest: +SKIP
        torch.Size([2, 512])
    """
    if hasattr(model, "forward_head"):  # every cnnkit model (see cnnkit.models.features)
        return model.forward_head(model.forward_features(x), pre_logits=True)
    captured: list[torch.Tensor] = []
    head = model.get_submodule(head_path(model))
    handle = head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return captured[-1].flatten(1)  # (N, F, ...) -> (N, F*...)


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, *, normalization=None,
                     batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate features of uint8 (0–255) or float images, in eval mode, as float32 NumPy.

    Args:
        model: a trained model (its mode is restored afterwards).
        images: (N, C, H, W) uint8 (normalised with ``normalization``) or float (used as is).
        normalization: the ``Normalization`` the model was trained with (None: /255 for uint8).
        batch_size: images per forward pass.
        device: where to run.

    Shape:
        (N, C, H, W) -> (N, F).

    Raises:
        ValueError: ``images`` is not a 4-d batch.
    """
    check_positive_int(batch_size, "batch_size")
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)!r}")
    was_training = model.training
    model.eval().to(device)
    chunks = []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            if normalization is not None:
                x = normalization.apply(x)
            elif x.dtype == torch.uint8:
                x = x.float() / 255.0
            chunks.append(penultimate(model, x.to(device)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy()


def save_features(path: str | Path, features: np.ndarray, labels: np.ndarray | None,
                  class_names: Sequence[str], files: Sequence[str] | None = None) -> Path:
    """Write ``features`` (N, F), ``labels`` (N,), ``class_names`` (and ``files``) to an .npz.

    Load it back with ``np.load(path)`` (no pickles: strings are stored as unicode arrays).

    Raises:
        ValueError: the path does not end in ``.npz``.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"the features file must end in .npz, got {str(path)!r}")
    arrays = {"features": features, "class_names": np.array(list(class_names), dtype=str)}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    if files is not None:
        arrays["files"] = np.array(list(files), dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
