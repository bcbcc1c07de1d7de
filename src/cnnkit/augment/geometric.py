"""Geometric augmentations: flips, padded random crops, pixel shifts, rotation and scale.

All of them work on any value scale (0-1 or normalised) and leave the labels unchanged; the
area they uncover is filled with ``fill`` (0, i.e. black on the 0-1 scale, since the training
loader augments before normalisation).

Implementation (numbers from ``bench/augment.py``, CPU, 1 thread, (256, 3, 32, 32) batches):
flips and crops are exact index operations in batched torch (``index_copy`` of the flipped
images; one ``torch.gather`` on a flattened index grid for crops and shifts); they are about
2x (flip) and 6-13x (crop) faster than ``kornia.augmentation``, so kornia is not used. Rotation
and scale build one (N, 2, 3) affine matrix per sample and resample with ``F.affine_grid`` +
``F.grid_sample`` (bilinear, ``align_corners=False`` so that the identity matrix samples pixel
centres exactly), which is what kornia does too: same speed, so no dependency for it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.augment.base import (Augmentation, Batch, rand, replace_selected, spec_token,
                                 uniform)

PADDING_MODES = ("constant", "reflect", "replicate")


def _check_number(value, name: str, *, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return float(value)


def _fill_p(fill: float, p: float) -> dict[str, float]:
    """The ``fill=`` and ``p=`` keywords of a spec token, when they differ from the defaults."""
    return {**({"fill": fill} if fill != 0 else {}), **({"p": p} if p != 1 else {})}


class RandomFlip(Augmentation):
    """Flip each image left-right (and/or upside down) with probability ``p``.

    Each sample gets its own coin flip; with both directions on, the two flips are drawn
    independently. Flipping twice with ``p=1`` is the identity.

    Args:
        horizontal: flip left-right (mirror the width axis).
        vertical: flip upside down (mirror the height axis); wrong for digits and most photos.
        p: probability of each flip per sample.
        seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged.

    Raises:
        ValueError: neither direction chosen, or ``p`` outside [0, 1].

    Example:
        >>> x, y = RandomFlip(p=0.5, seed=0)(torch.rand(4, 3, 32, 32), torch.arange(4))
    """

    def __init__(self, horizontal: bool = True, vertical: bool = False, p: float = 0.5, *,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        if not (horizontal or vertical):
            raise ValueError("RandomFlip needs horizontal=True or vertical=True (got both False)")
        self.horizontal = bool(horizontal)
        self.vertical = bool(vertical)

    def apply(self, x, y, generator) -> Batch:
        n = x.shape[0]
        if self.horizontal:
            x = replace_selected(x, self.selected(n, generator, x.device),
                                 lambda images: images.flip(-1))
        if self.vertical:
            x = replace_selected(x, self.selected(n, generator, x.device),
                                 lambda images: images.flip(-2))
        return x, y

    def to_spec(self) -> str:
        args = [] if self.p == 0.5 else [self.p]
        names = (["flip"] if self.horizontal else []) + (["vflip"] if self.vertical else [])
        return ",".join(spec_token(name, args) for name in names)


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: tuple[int, int], *,
                 padding_mode: str = "constant", fill: float = 0.0) -> torch.Tensor:
    """Shift every image by its own whole number of pixels, filling what is uncovered.

    Pads by ``pad = (pad_h, pad_w)`` then crops an H x W window whose top-left corner is at
    ``(pad_h - dy, pad_w - dx)`` of the padded image, with one batched ``torch.gather`` on the
    flattened pixels (faster than two gathers, advanced indexing or ``unfold`` in the benchmark).
    A positive ``dx`` moves the content right, a positive ``dy`` moves it down.

    Args:
        x: the batch.
        dy, dx: int64 shifts per sample, within [-pad_h, pad_h] and [-pad_w, pad_w].
        pad: padding (rows, columns) added on each side before cropping.
        padding_mode: ``'constant'`` (``fill``), ``'reflect'`` or ``'replicate'``.
        fill: value of the padding in constant mode.

    Shape:
        x: (N, C, H, W), dy and dx: (N,) -> (N, C, H, W).
    """
    n, c, h, w = x.shape
    pad_h, pad_w = pad
    if pad_h == 0 and pad_w == 0:
        return x
    if padding_mode == "constant":
        padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="constant", value=fill)
    else:
        padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode=padding_mode)
    width = w + 2 * pad_w  # padded width
    # Index of each output pixel in the flattened padded image: window corner + (row, col).
    corner = (pad_h - dy) * width + (pad_w - dx)               # (N,)
    rows = torch.arange(h, device=x.device).view(h, 1)         # (H,) -> (H, 1)
    window = rows * width + torch.arange(w, device=x.device)   # (H, W)
    index = corner.view(n, 1, 1) + window.view(1, 1, h * w)    # -> (N, 1, H*W)
    index = index.expand(n, c, h * w)                          # -> (N, C, H*W)
    flat = padded.flatten(2)                                   # (N, C, Hp, Wp) -> (N, C, Hp*Wp)
    return flat.gather(2, index).view(n, c, h, w)              # (N, C, H*W) -> (N, C, H, W)


class RandomCrop(Augmentation):
    """Pad each image by ``padding`` pixels, then crop it back to its size at a random offset.

    The classic CIFAR recipe (``crop(4)``: pad 32x32 to 40x40, take a random 32x32 window), which
    shifts each image by a random whole number of pixels in [-padding, padding]. Padding 0 is
    the identity.

    Args:
        padding: pixels added on each side, an int or (pad_h, pad_w).
        padding_mode: ``'constant'`` (pad with ``fill``), ``'reflect'`` or ``'replicate'``.
        fill: padding value in constant mode (0 = black on the 0-1 scale).
        p: probability that a sample is cropped (the others keep offset 0).
        seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W): padded to (H + 2*pad_h, W + 2*pad_w), cropped back to H x W.

    Raises:
        ValueError: negative padding, unknown ``padding_mode``, or reflect padding not smaller
            than the image.

    Example:
        >>> x, y = RandomCrop(4, seed=0)(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, padding=4, *, padding_mode: str = "constant", fill: float = 0.0,
                 p: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        if isinstance(padding, bool) or not isinstance(padding, (int, tuple, list)):
            raise TypeError(f"padding must be an int or (pad_h, pad_w) ints, got {padding!r}")
        padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
        if len(padding) != 2 or not all(isinstance(v, int) and v >= 0 for v in padding):
            raise ValueError(f"padding must be ints >= 0 (pixels on each side), got {padding!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding = padding
        self.padding_mode = padding_mode
        self.fill = _check_number(fill, "fill")

    def apply(self, x, y, generator) -> Batch:
        n, _, h, w = x.shape
        pad_h, pad_w = self.padding
        if self.padding_mode == "reflect" and (pad_h >= h or pad_w >= w):
            raise ValueError(f"reflect padding {self.padding!r} must be smaller than the image "
                             f"({h}x{w}); lower padding or use padding_mode='constant'")
        keep = ~self.selected(n, generator, x.device)
        dy = torch.randint(-pad_h, pad_h + 1, (n,), generator=generator, device=x.device)
        dx = torch.randint(-pad_w, pad_w + 1, (n,), generator=generator, device=x.device)
        dy, dx = dy.masked_fill(keep, 0), dx.masked_fill(keep, 0)
        x = shift_images(x, dy, dx, self.padding, padding_mode=self.padding_mode, fill=self.fill)
        return x, y

    def to_spec(self) -> str:
        pad_h, pad_w = self.padding
        args = [pad_h] if pad_h == pad_w else [pad_h, pad_w]
        keywords = {"padding_mode": self.padding_mode} if self.padding_mode != "constant" else {}
        return spec_token("crop", args, **keywords, **_fill_p(self.fill, self.p))


class RandomTranslate(Augmentation):
    """Shift each image by a random whole number of pixels, filling the uncovered border.

    Shifts are drawn uniformly from the integers in [-max_shift, max_shift] independently for
    rows and columns. Same operation as ``RandomCrop`` with constant padding.

    Args:
        max_shift: largest shift; an int is pixels, a float in (0, 1) a fraction of the height
            and width (rounded to whole pixels).
        fill: value of the uncovered pixels.
        p, seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged.

    Raises:
        ValueError: ``max_shift`` negative, or a fraction not below 1.

    Example:
        >>> x, y = RandomTranslate(3, seed=0)(torch.rand(8, 1, 28, 28), torch.arange(8))
    """

    def __init__(self, max_shift: int | float = 4, *, fill: float = 0.0, p: float = 1.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        _check_number(max_shift, "max_shift", low=0)
        if isinstance(max_shift, float) and max_shift >= 1:
            raise ValueError(f"max_shift as a float is a fraction of the image size and must be "
                             f"below 1, got {max_shift!r}; give whole pixels as an int")
        self.max_shift = max_shift
        self.fill = _check_number(fill, "fill")

    def max_pixels(self, h: int, w: int) -> tuple[int, int]:
        """Largest shift in pixels (rows, columns) for an H x W image."""
        if isinstance(self.max_shift, int):
            return min(self.max_shift, h), min(self.max_shift, w)
        return round(self.max_shift * h), round(self.max_shift * w)

    def apply(self, x, y, generator) -> Batch:
        n, _, h, w = x.shape
        max_h, max_w = self.max_pixels(h, w)
        keep = ~self.selected(n, generator, x.device)
        dy = torch.randint(-max_h, max_h + 1, (n,), generator=generator, device=x.device)
        dx = torch.randint(-max_w, max_w + 1, (n,), generator=generator, device=x.device)
        dy, dx = dy.masked_fill(keep, 0), dx.masked_fill(keep, 0)
        return shift_images(x, dy, dx, (max_h, max_w), fill=self.fill), y

    def to_spec(self) -> str:
        return spec_token("translate", [self.max_shift], **_fill_p(self.fill, self.p))


def affine_matrices(angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                    size: tuple[int, int]) -> torch.Tensor:
    """Build the ``F.affine_grid`` matrices that rotate, scale and shift each image.

    The image content is rotated by ``angle`` degrees (counter-clockwise as displayed, like
    ``torch.rot90``), scaled by ``scale`` about the centre (> 1 zooms in), then moved by
    ``shift = (dx, dy)`` pixels (right, down). ``affine_grid`` maps *output* coordinates to
    *input* coordinates, so the matrix is the inverse transform, expressed in the normalised
    coordinates u = 2x/W, v = 2y/H (x, y in pixels from the centre):
    theta = D R(angle)^-1 D^-1 / scale with D = diag(2/W, 2/H), and offset -theta D shift.

    Shape:
        angle, scale: (N,); shift: (N, 2) -> (N, 2, 3).
    """
    h, w = size
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad) / scale, torch.sin(rad) / scale
    # Inverse rotation in pixel coordinates with y pointing down (counter-clockwise on screen).
    a = torch.stack([cos, -sin * h / w, sin * w / h, cos], dim=1)  # (N, 4)
    a = a.view(-1, 2, 2)                                             # (N, 4) -> (N, 2, 2)
    shift_norm = shift * shift.new_tensor([2.0 / w, 2.0 / h])       # (N, 2) pixels -> normalised
    offset = -(a @ shift_norm.unsqueeze(-1))                         # (N, 2) -> (N, 2, 1)
    return torch.cat([a, offset], dim=2)                             # (N, 2, 3)


class RandomAffine(Augmentation):
    """Rotate, scale and shift each image by its own random amounts in one resampling pass.

    Angles are uniform in [-degrees, degrees], scale factors uniform in ``scale``, and shifts
    uniform in [-translate, translate] times the width (columns) and height (rows). The output
    is resampled bilinearly with ``F.affine_grid`` + ``F.grid_sample``; pixels that come from
    outside the image are ``fill``. All parameters zero/one is the identity up to float rounding.

    Args:
        degrees: largest rotation in degrees (>= 0).
        scale: (low, high) range of zoom factors (> 0), or None for no scaling.
        translate: largest shift as a fraction of the image size, in [0, 1).
        fill: value of pixels that come from outside the image.
        p, seed, generator: see ``Augmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged.

    Raises:
        ValueError: negative ``degrees``, a bad ``scale`` range, or ``translate`` outside [0, 1).

    Example:
        >>> aug = RandomAffine(degrees=10, scale=(0.9, 1.1), translate=0.1, seed=0)
        >>> x, y = aug(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, degrees: float = 0.0, scale: tuple[float, float] | None = None,
                 translate: float = 0.0, *, fill: float = 0.0, p: float = 1.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        self.degrees = _check_number(degrees, "degrees", low=0)
        if scale is not None:
            if not isinstance(scale, (tuple, list)) or len(scale) != 2:
                raise TypeError(f"scale must be a (low, high) pair of factors, got {scale!r}")
            low, high = (_check_number(s, "scale") for s in scale)
            if not 0 < low <= high:
                raise ValueError(f"scale must satisfy 0 < low <= high, got {scale!r}; "
                                 "e.g. (0.9, 1.1) zooms out or in by up to 10%")
            scale = (low, high)
        self.scale = scale
        self.translate = _check_number(translate, "translate", low=0)
        if self.translate >= 1:
            raise ValueError(f"translate is a fraction of the image size and must be below 1, "
                             f"got {translate!r}")
        self.fill = _check_number(fill, "fill")

    def sample(self, n: int, generator, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw per-sample (angle in degrees, scale factor, (dx, dy) as fractions of W, H).

        Shape: (n,), (n,), (n, 2).
        """
        angle = uniform(n, -self.degrees, self.degrees, generator, device)
        low, high = self.scale or (1.0, 1.0)
        scale = uniform(n, low, high, generator, device)
        shift = uniform(2 * n, -self.translate, self.translate, generator, device)
        shift = shift.view(n, 2)  # (2N,) -> (N, 2): (dx, dy) per sample
        apply = rand(n, generator, device) < self.p
        angle = torch.where(apply, angle, 0.0)
        scale = torch.where(apply, scale, 1.0)
        shift = torch.where(apply.view(n, 1), shift, 0.0)  # (N,) -> (N, 1)
        return angle, scale, shift

    def apply(self, x, y, generator) -> Batch:
        n, _, h, w = x.shape
        angle, scale, shift = self.sample(n, generator, x.device)
        shift_px = shift * shift.new_tensor([w, h])  # (N, 2) fractions -> pixels
        theta = affine_matrices(angle, scale, shift_px, (h, w)).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
        if self.fill == 0:
            return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False), y
        # Resample (x - fill) with zero padding, then add fill back: outside pixels become fill.
        out = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return out + self.fill, y

    def to_spec(self) -> str:
        low, high = self.scale or (1.0, 1.0)
        return spec_token("affine", [self.degrees, low, high, self.translate],
                          **_fill_p(self.fill, self.p))


class RandomRotation(RandomAffine):
    """Rotate each image by its own random angle, uniform in [-degrees, degrees].

    Positive angles turn the content counter-clockwise as displayed; corners uncovered by the
    rotation are ``fill``. ``degrees=0`` is the identity (up to float rounding).

    Args:
        degrees: largest rotation in degrees (>= 0); ``rotate(10)`` in a spec string.
        fill, p, seed, generator: see ``RandomAffine``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged.

    Example:
        >>> x, y = RandomRotation(10, seed=0)(torch.rand(8, 1, 28, 28), torch.arange(8))
    """

    def __init__(self, degrees: float = 10.0, *, fill: float = 0.0, p: float = 1.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(degrees, fill=fill, p=p, seed=seed, generator=generator)

    def to_spec(self) -> str:
        return spec_token("rotate", [self.degrees], **_fill_p(self.fill, self.p))


class RandomScale(RandomAffine):
    """Zoom each image in or out about its centre by a factor uniform in ``scale``.

    Factors above 1 zoom in (crop away the border), below 1 zoom out (a ``fill`` border appears).

    Args:
        scale: (low, high) range of factors, e.g. (0.9, 1.1); ``scale(0.9,1.1)`` in a spec string.
        fill, p, seed, generator: see ``RandomAffine``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); labels unchanged.

    Example:
        >>> x, y = RandomScale((0.9, 1.1), seed=0)(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    def __init__(self, scale: tuple[float, float] = (0.9, 1.1), *, fill: float = 0.0,
                 p: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(0.0, scale=scale, fill=fill, p=p, seed=seed, generator=generator)

    def to_spec(self) -> str:
        return spec_token("scale", list(self.scale), **_fill_p(self.fill, self.p))

