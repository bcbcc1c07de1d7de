"""Occlusion augmentations: random erasing (Zhong et al. 2017) and cutout (DeVries & Taylor 2017).

Both blank out one rectangle per image, at a position drawn per sample, by comparing an index
grid with the per-sample box bounds (one boolean (N, 1, H, W) mask, no loop over samples). They
work on any value scale; ``value`` is the fill in the batch's own scale (0 = black on the 0-1
scale the training loader augments on). Labels are unchanged.
"""
from __future__ import annotations

import math

import torch

from cnnkit._checks import check_positive_int
from cnnkit.augment.base import Augmentation, Batch, rand, spec_token, uniform


def box_mask(top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor,
             size: tuple[int, int]) -> torch.Tensor:
    """Boolean masks that are True inside each sample's box (clipped to the image).

    Shape:
        top, left, height, width: (N,) int64 -> (N, 1, H, W) bool, with (H, W) = ``size``.
    """
    h, w = size
    n = top.shape[0]
    rows = torch.arange(h, device=top.device).view(1, h)                # (H,) -> (1, H)
    cols = torch.arange(w, device=top.device).view(1, w)                # (W,) -> (1, W)
    in_rows = (rows >= top.view(n, 1)) & (rows < (top + height).view(n, 1))  # (N, H)
    in_cols = (cols >= left.view(n, 1)) & (cols < (left + width).view(n, 1))  # (N, W)
    return (in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w))        # -> (N, 1, H, W)


def _check_range(value, name: str, *, low: float, high: float | None = None):
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"{name} must be a (low, high) pair of numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (low < lo <= hi and (high is None or hi <= high)):
        bound = f"{low} < low <= high" + ("" if high is None else f" <= {high}")
        raise ValueError(f"{name} must satisfy {bound}, got {value!r}")
    return lo, hi


class RandomErasing(Augmentation):
    """Erase one random rectangle per image with probability ``p`` (Zhong et al. 2017).

    The rectangle's area is a fraction of the image uniform in ``scale`` and its aspect ratio
    (height / width) is log-uniform in ``ratio``; its sides are rounded to whole pixels and
    clipped to the image (instead of torchvision's retries), then it is placed uniformly inside.

    Args:
        p: probability that an image gets a rectangle (``erase(0.5)`` in a spec string).
        scale: (low, high) range of the erased area as a fraction of H*W, within (0, 1].
        ratio: (low, high) range of the rectangle's aspect ratio height / width.
        value: fill of the rectangle.
        seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged.
        Rectangle: h = round(sqrt(area * r)), w = round(sqrt(area / r)), both clipped to [1, H]
        and [1, W], area = s * H * W.

    Raises:
        ValueError: ``p`` outside [0, 1], or a bad ``scale``/``ratio`` range.

    Example:
        >>> x, y = RandomErasing(0.5, seed=0)(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.33),
                 ratio: tuple[float, float] = (0.3, 3.3), *, value: float = 0.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        self.scale = _check_range(scale, "scale", low=0.0, high=1.0)
        self.ratio = _check_range(ratio, "ratio", low=0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"value must be a number (the fill), got {value!r}")
        self.value = float(value)

    def boxes(self, n: int, size: tuple[int, int], generator, device):
        """Draw each sample's box as (top, left, height, width), each int64 of shape (n,)."""
        h, w = size
        area = uniform(n, *self.scale, generator, device) * (h * w)
        log_ratio = uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), generator, device)
        aspect = torch.exp(log_ratio)
        height = torch.sqrt(area * aspect).round().long().clamp(1, h)
        width = torch.sqrt(area / aspect).round().long().clamp(1, w)
        top = (rand(n, generator, device) * (h - height + 1)).long()
        left = (rand(n, generator, device) * (w - width + 1)).long()
        return top, left, height, width

    def apply(self, x, y, generator) -> Batch:
        n, _, h, w = x.shape
        mask = self.apply_mask(n, generator, x.device)
        mask = mask & box_mask(*self.boxes(n, (h, w), generator, x.device), (h, w))
        return x.masked_fill(mask, self.value), y

    def to_spec(self) -> str:
        keywords = {}
        if self.scale != (0.02, 0.33):
            keywords.update(scale_low=self.scale[0], scale_high=self.scale[1])
        if self.ratio != (0.3, 3.3):
            keywords.update(ratio_low=self.ratio[0], ratio_high=self.ratio[1])
        if self.value != 0:
            keywords["value"] = self.value
        return spec_token("erase", [self.p], **keywords)


class Cutout(Augmentation):
    """Blank out a ``size`` x ``size`` square centred on a random pixel of each image.

    As in DeVries & Taylor (2017) the centre is uniform over the whole image, so the square may
    hang over the border and then covers less (clipped).

    Args:
        size: side of the square in pixels (``cutout(8)`` in a spec string; 16 is their CIFAR-10
            choice, 8 is gentler).
        p: probability per image.
        value: fill of the square.
        seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged. Square rows
        [cy - size // 2, cy - size // 2 + size) clipped to [0, H), columns likewise.

    Raises:
        ValueError: ``size`` below 1 or ``p`` outside [0, 1].

    Example:
        >>> x, y = Cutout(8, seed=0)(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, size: int = 8, *, p: float = 1.0, value: float = 0.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        self.size = check_positive_int(size, "size")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"value must be a number (the fill), got {value!r}")
        self.value = float(value)

    def apply(self, x, y, generator) -> Batch:
        n, _, h, w = x.shape
        mask = self.apply_mask(n, generator, x.device)
        cy = torch.randint(0, h, (n,), generator=generator, device=x.device)
        cx = torch.randint(0, w, (n,), generator=generator, device=x.device)
        side = torch.full_like(cy, self.size)
        mask = mask & box_mask(cy - self.size // 2, cx - self.size // 2, side, side, (h, w))
        return x.masked_fill(mask, self.value), y

    def to_spec(self) -> str:
        keywords = {**({"p": self.p} if self.p != 1 else {}),
                    **({"value": self.value} if self.value != 0 else {})}
        return spec_token("cutout", [self.size], **keywords)
