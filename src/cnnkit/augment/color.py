"""Colour augmentations: brightness, contrast, saturation and hue jitter, and random grayscale.

These assume values on the **0-1 scale** (results are clamped to [0, 1]), which is what the
training loader gives them: it augments the float 0-1 batch before mean/std normalisation.
Saturation and hue are meaningless for 1-channel (grayscale) images: there they are skipped,
so ``jitter(0.2)`` works on MNIST as brightness + contrast only. Other channel counts than 1
and 3 raise a ValueError.

Implementation: batched torch with one random factor per sample, broadcast as (N, 1, 1, 1);
hue goes through a batched RGB <-> HSV conversion. ``bench/augment.py`` measures it about as
fast as ``kornia.augmentation.ColorJitter`` on RGB batches (1.0-1.2x) and 1.6x faster on
grayscale ones, so kornia stays an optional extra rather than a dependency.
"""
from __future__ import annotations

import torch

from cnnkit.augment.base import Augmentation, Batch, replace_selected, spec_token, uniform

# ITU-R BT.601 luma weights, the ones PIL and torchvision use for RGB -> L.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _check_channels(x: torch.Tensor, name: str) -> None:
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} needs 1-channel (grayscale) or 3-channel (RGB) images, got "
                         f"{x.shape[1]} channels in a batch of shape {tuple(x.shape)!r}")


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    """Raise a ValueError when ``x`` is clearly not on the 0-1 scale (e.g. already normalised)."""
    low, high = torch.aminmax(x)
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"{name} expects images on the 0-1 scale, got values from "
                         f"{low.item():.3g} to {high.item():.3g}; apply augmentation to the "
                         "x / 255 batch before mean/std normalisation")


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images (0.299 R + 0.587 G + 0.114 B); 1-channel images are returned as is.

    Shape:
        (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """
    if x.shape[1] == 1:
        return x
    weights = x.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)  # (3,) -> (1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """Convert RGB in [0, 1] to HSV with hue, saturation and value all in [0, 1].

    Shape:
        (N, 3, H, W) -> (N, 3, H, W).
    """
    r, g, b = x.unbind(dim=1)  # (N, 3, H, W) -> 3 x (N, H, W)
    value = torch.maximum(torch.maximum(r, g), b)
    delta = value - torch.minimum(torch.minimum(r, g), b)
    inv_delta = 1.0 / torch.where(delta > 0, delta, 1.0)
    saturation = delta / torch.where(value > 0, value, 1.0)
    # Hue sector: 0 when red is largest, 2 for green, 4 for blue, plus the offset inside it.
    hue = torch.where(value == r, (g - b) * inv_delta,
                      torch.where(value == g, 2.0 + (b - r) * inv_delta, 4.0 + (r - g) * inv_delta))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, 0.0)
    return torch.stack([hue, saturation, value], dim=1)  # 3 x (N, H, W) -> (N, 3, H, W)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Convert HSV (all in [0, 1]) back to RGB in [0, 1].

    Uses the closed form  channel(n) = V - V S clamp(min(k, 4 - k), 0, 1),  k = (n + 6 H) mod 6
    with n = 5, 3, 1 for R, G, B.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W).
    """
    hue, saturation, value = x.unsqueeze(2).unbind(dim=1)  # (N, 3, H, W) -> 3 x (N, 1, H, W)
    n = x.new_tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)     # (3,) -> (1, 3, 1, 1)
    k = (n + 6.0 * hue) % 6.0                               # (N, 3, H, W)
    return value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def _factor_range(value, name: str, center: float = 1.0) -> tuple[float, float]:
    """Range [max(0, center - v), center + v] of a jitter factor, or an explicit (low, high)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number >= 0 or a (low, high) pair, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (0 turns it off), got {value!r}")
        return max(0.0, center - value), center + float(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        low, high = float(value[0]), float(value[1])
        if not 0 <= low <= high:
            raise ValueError(f"{name} as (low, high) needs 0 <= low <= high, got {value!r}")
        return low, high
    raise TypeError(f"{name} must be a number >= 0 or a (low, high) pair, got {value!r}")


class ColorJitter(Augmentation):
    """Randomly change brightness, contrast, saturation and hue, each sample by its own amount.

    Factors are drawn uniformly per sample: brightness, contrast and saturation in
    [max(0, 1 - v), 1 + v], hue shift in [-hue, hue] of a full turn. They are applied in that
    fixed order, clamping to [0, 1] after each:

    - brightness: x * b
    - contrast:   (x - mean gray of the image) * c + mean gray
    - saturation: (x - gray of the pixel) * s + gray          (skipped for 1-channel images)
    - hue:        rotate the HSV hue by h                      (skipped for 1-channel images)

    Assumes the 0-1 scale (apply before normalisation, as the training loader does).

    Args:
        brightness, contrast, saturation: jitter strength v >= 0 (0 = off), or a (low, high)
            factor range.
        hue: largest hue shift in [0, 0.5] (0.5 = half a turn).
        p, seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W) with C = 1 or 3; labels unchanged.

    Raises:
        ValueError: negative strength, ``hue`` outside [0, 0.5], images that are neither
            1- nor 3-channel, or values outside [0, 1] (a normalised batch).

    Example:
        >>> jitter = ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, seed=0)
        >>> x, y = jitter(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue: float = 0.0, *,
                 p: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        self.brightness = _factor_range(brightness, "brightness")
        self.contrast = _factor_range(contrast, "contrast")
        self.saturation = _factor_range(saturation, "saturation")
        self.strengths = (brightness, contrast, saturation)  # as given, for to_spec
        if isinstance(hue, bool) or not isinstance(hue, (int, float)):
            raise TypeError(f"hue must be a number in [0, 0.5], got {hue!r}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5] (a fraction of a full turn), got {hue!r}")
        self.hue = float(hue)

    def sample(self, n: int, generator, device) -> dict[str, torch.Tensor]:
        """Draw the per-sample factors (1 = unchanged, hue 0 = unchanged). Each has shape (n,)."""
        apply = torch.rand(n, generator=generator, device=device) < self.p
        factors = {
            "brightness": uniform(n, *self.brightness, generator, device),
            "contrast": uniform(n, *self.contrast, generator, device),
            "saturation": uniform(n, *self.saturation, generator, device),
            "hue": uniform(n, -self.hue, self.hue, generator, device),
        }
        neutral = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
        return {k: torch.where(apply, v, neutral[k]) for k, v in factors.items()}

    def apply(self, x, y, generator) -> Batch:
        _check_channels(x, "ColorJitter")
        _check_unit_range(x, "ColorJitter")
        n = x.shape[0]
        factors = {k: v.to(x.dtype).view(n, 1, 1, 1)  # (N,) -> (N, 1, 1, 1)
                   for k, v in self.sample(n, generator, x.device).items()}
        if self.brightness != (1.0, 1.0):
            x = (x * factors["brightness"]).clamp(0.0, 1.0)
        if self.contrast != (1.0, 1.0):
            mean = rgb_to_gray(x).mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
            x = ((x - mean) * factors["contrast"] + mean).clamp(0.0, 1.0)
        if x.shape[1] == 3 and self.saturation != (1.0, 1.0):
            gray = rgb_to_gray(x)
            x = ((x - gray) * factors["saturation"] + gray).clamp(0.0, 1.0)
        if x.shape[1] == 3 and self.hue > 0:
            hsv = rgb_to_hsv(x)
            hue = (hsv[:, :1] + factors["hue"]) % 1.0
            x = hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1)).clamp(0.0, 1.0)
        return x, y

    def to_spec(self) -> str:
        if not all(isinstance(v, (int, float)) for v in self.strengths):
            raise ValueError(f"ColorJitter with explicit (low, high) factor ranges has no spec "
                             f"token (got strengths {self.strengths!r}); use numbers like "
                             "ColorJitter(0.2, 0.2, 0.2) to save it as a spec string")
        keywords = {"p": self.p} if self.p != 1 else {}
        return spec_token("jitter", [*self.strengths, self.hue], **keywords)


class RandomGrayscale(Augmentation):
    """Turn each RGB image into gray (luma copied to the 3 channels) with probability ``p``.

    The output keeps 3 channels so the model's input shape does not change. 1-channel images
    are already gray and pass through unchanged. Assumes the 0-1 scale or any linear scale.

    Args:
        p: probability per sample (``grayscale(0.1)`` in a spec string).
        seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W) with C = 1 or 3; labels unchanged.

    Raises:
        ValueError: images that are neither 1- nor 3-channel.

    Example:
        >>> x, y = RandomGrayscale(0.1, seed=0)(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, p: float = 0.1, *, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)

    def apply(self, x, y, generator) -> Batch:
        _check_channels(x, "RandomGrayscale")
        n = x.shape[0]
        selected = self.selected(n, generator, x.device)
        if x.shape[1] == 1:
            return x, y
        return replace_selected(x, selected, lambda rgb: rgb_to_gray(rgb).expand_as(rgb)), y

    def to_spec(self) -> str:
        return spec_token("grayscale", [self.p])
