"""Small datasets that need no download: scikit-learn's 8×8 digits and generated shapes.

``"digits"``: the 1797 8×8 handwritten digits that ship with scikit-learn (UCI optical
recognition of handwritten digits); pixel values 0..16 are scaled to 0..255.

``"shapes"``: 1600 generated 28×28 grayscale images of four classes (circle, square, triangle,
cross), 400 each, at random positions, sizes and brightness with a little noise. The same
seed always generates the same images. Cheap enough for tests and the README's first example.
"""
from __future__ import annotations

import numpy as np
import torch

from cnnkit.data.dataset import DataSplits, ImageData

SHAPE_NAMES = ["circle", "square", "triangle", "cross"]
SHAPES_PER_CLASS = 400
SHAPES_SIZE = 28


def builtin_names() -> list[str]:
    """Names accepted by ``load_builtin``."""
    return sorted(_LOADERS)


def _digits(seed: int) -> ImageData:
    from sklearn.datasets import load_digits  # import cost: scikit-learn (~1 s)

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = pixels[:, None, :, :]  # (N, 8, 8) -> (N, 1, 8, 8)
    return ImageData(torch.from_numpy(np.ascontiguousarray(images)),
                     torch.from_numpy(digits.target.astype(np.int64)),
                     [str(k) for k in range(10)], source="builtin:digits")


def _shape_masks(labels: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Boolean masks (N, size, size): one filled shape per image, centred at a random place."""
    n = len(labels)
    radius = rng.uniform(size * 0.18, size * 0.32, n)[:, None, None]
    margin = radius + 1
    cy = rng.uniform(margin[:, 0, 0], size - 1 - margin[:, 0, 0])[:, None, None]
    cx = rng.uniform(margin[:, 0, 0], size - 1 - margin[:, 0, 0])[:, None, None]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = y[None] - cy, x[None] - cx  # (H, W) grids -> (N, H, W) offsets from each centre
    thickness = np.maximum(1.0, radius / 3)
    masks = {
        "circle": dx**2 + dy**2 <= radius**2,
        "square": (np.abs(dx) <= radius * 0.85) & (np.abs(dy) <= radius * 0.85),
        # apex at the top, base of width 2*radius at the bottom
        "triangle": (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2),
        "cross": ((np.abs(dx) <= thickness / 2) & (np.abs(dy) <= radius))
                 | ((np.abs(dy) <= thickness / 2) & (np.abs(dx) <= radius)),
    }
    chosen = np.stack([masks[name] for name in SHAPE_NAMES])  # 4 x (N, H, W) -> (4, N, H, W)
    return chosen[labels, np.arange(n)]


def _shapes(seed: int) -> ImageData:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(SHAPE_NAMES)), SHAPES_PER_CLASS))
    masks = _shape_masks(labels, rng, SHAPES_SIZE)
    brightness = rng.uniform(150, 255, len(labels))[:, None, None]
    noise = rng.normal(0, 12, masks.shape)
    pixels = np.clip(masks * brightness + noise, 0, 255).round().astype(np.uint8)
    images = pixels[:, None, :, :]  # (N, H, W) -> (N, 1, H, W)
    return ImageData(torch.from_numpy(np.ascontiguousarray(images)),
                     torch.from_numpy(labels.astype(np.int64)), list(SHAPE_NAMES),
                     source="builtin:shapes")


_LOADERS = {"digits": _digits, "shapes": _shapes}


def load_builtin(name: str = "digits", *, test_fraction: float = 0.2,
                 seed: int = 0) -> DataSplits:
    """Load a built-in dataset, split into train and test (stratified, deterministic).

    Args:
        name: ``"digits"`` (8×8×1, 10 classes) or ``"shapes"`` (28×28×1, 4 classes).
        test_fraction: share of the images in the test split, in (0, 1).
        seed: seed of the split (and of the generated images for ``"shapes"``).

    Shape:
        images (N, 1, 8, 8) for digits, (N, 1, 28, 28) for shapes.

    Raises:
        ValueError: unknown name or a test_fraction outside (0, 1).

    Example:
        >>> splits = load_builtin("digits")
        >>> len(splits.train), len(splits.test), splits.input_shape
        (1438, 359, (1, 8, 8))
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {builtin_names()}")
    data = _LOADERS[name](seed)
    train, test = data.split(test_fraction, seed=seed, stratify=True)
    return DataSplits(train=train, test=test)
