"""Random erasing and cutout: one rectangle per image, with the requested sizes and rate."""
from __future__ import annotations

import math

import pytest
import torch

from cnnkit.augment import Cutout, RandomErasing


def _erased(out):
    """Per-sample boolean mask of erased pixels (inputs are > 0 everywhere). (N, 1, H, W)."""
    return (out == 0).all(dim=1, keepdim=True)


def _is_rectangle(mask_2d: torch.Tensor) -> bool:
    rows = mask_2d.any(1).nonzero().flatten()
    cols = mask_2d.any(0).nonzero().flatten()
    box = mask_2d[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return bool(box.all()) and int(mask_2d.sum()) == box.numel()


def test_erasing_rate_area_and_shape():
    n, h, w = 4000, 16, 16
    x = torch.rand(n, 3, h, w) + 0.1
    out, y = RandomErasing(p=0.5, scale=(0.05, 0.2), ratio=(0.5, 2.0), seed=0)(
        x, torch.arange(n))
    mask = _erased(out)
    erased = mask.flatten(1).any(1)  # (N, 1, H, W) -> (N,)
    assert abs(erased.float().mean().item() - 0.5) < 4 * math.sqrt(0.25 / n)
    assert torch.equal(out[~mask.expand_as(out)], x[~mask.expand_as(x)])  # untouched elsewhere
    area = mask.flatten(1).sum(1)[erased].float() / (h * w)  # (N, H*W) -> (N,)
    # Sides are rounded to whole pixels, so allow a pixel of slack on each side.
    assert area.min() >= 0.05 * 0.6 and area.max() <= 0.2 * 1.5
    assert all(_is_rectangle(mask[i, 0]) for i in erased.nonzero().flatten()[:50])
    assert torch.equal(y, torch.arange(n))


def test_erasing_with_p_zero_is_identity():
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(RandomErasing(p=0.0, seed=0)(x, torch.zeros(5, dtype=torch.long))[0], x)


def test_cutout_is_a_clipped_square_of_the_given_size():
    n, size = 2000, 4
    x = torch.rand(n, 1, 10, 10) + 0.1
    out, _ = Cutout(size, value=0.0, seed=0)(x, torch.zeros(n, dtype=torch.long))
    mask = _erased(out)[:, 0]
    sides = torch.stack([mask.any(2).sum(1), mask.any(1).sum(1)], 1)  # rows, cols of the box
    assert sides.max() == size and sides.min() >= size // 2  # clipped at the border
    assert (mask.sum((1, 2)) == sides.prod(1)).all()
    full = (sides == size).all(1).float().mean().item()
    # Rows [cy - 2, cy + 2) fit inside 10 rows for cy in 2..8: 7 of 10 centres per axis.
    assert abs(full - 0.7 ** 2) < 0.05
    assert all(_is_rectangle(mask[i]) for i in range(50))


def test_cutout_value_and_errors():
    x = torch.zeros(3, 3, 8, 8)
    out, _ = Cutout(2, value=0.5, seed=0)(x, torch.zeros(3, dtype=torch.long))
    assert ((out == 0.5).flatten(1).sum(1) == 3 * (out[:, :1] == 0.5).flatten(1).sum(1)).all()
    with pytest.raises(ValueError, match=r"size must be >= 1, got 0"):
        Cutout(0)
    with pytest.raises(ValueError, match=r"scale must satisfy 0\.0 < low <= high <= 1\.0"):
        RandomErasing(scale=(0.5, 2.0))
