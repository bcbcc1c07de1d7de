"""Augmentations that move localisation boxes, detection boxes and masks with the image.

Every module here has ``forward(x, targets, *, generator=None) -> (x, targets)``: ``x`` is a
float (N, C, H, W) batch on the 0-1 scale and ``targets`` one of the dicts of the tasks
contract, on the same device (the task is read from the keys and shapes):

- localize: ``{"labels": (N,) int64, "boxes": (N, 4) float}``
- detect:   ``{"labels": (N, M) int64 with -1 padding, "boxes": (N, M, 4), "ignore": (N, M) bool}``
- segment:  ``{"masks": (N, H, W) uint8}`` with 255 = ignore

Boxes are pixel (x_min, y_min, x_max, y_max) with the max exclusive, so a box covering
columns 2..5 is x_min = 2, x_max = 6 and a mirror maps x to W - x. Random parameters are drawn
per sample from a ``torch.Generator`` in the order of ``cnnkit.augment.base`` (forward's
``generator``, else the constructor's, else one made from ``seed``, else the global one).

Rules (the same for every geometric op):

- boxes are moved, then clipped to the image;
- **detect**: a box whose clipped area is below ``min_visible`` (default 0.25) of its moved,
  unclipped area -- or that left the image -- is dropped: its label becomes -1, its box
  (0, 0, 0, 0) and its ignore flag False (it becomes padding);
- **localize**: the single box must never be lost, so after the parameters are sampled the
  shift is clamped (crop, translate) to the range that keeps the whole box inside the image,
  and a zoom-in factor is clamped to the largest that keeps it inside (zoom-out always does);
- **segment**: masks move with nearest-neighbour resampling (exact label values); pixels the
  move uncovers become 255 (ignore), so losses and metrics skip them. The image's uncovered
  pixels become 0 (black).

Colour ops (``jitter``, ``grayscale``) are ``cnnkit.augment.color``'s modules, unchanged,
wrapped by ``ColorOnly``: they leave the targets untouched (the same dict is returned).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.augment.base import Augmentation, Compose, spec_token, uniform
from cnnkit.augment.color import ColorJitter, RandomGrayscale
from cnnkit.augment.geometric import shift_images
from cnnkit.augment.parse import spec_arguments, spec_tokens

Targets = dict[str, torch.Tensor]
TASKS = ("localize", "detect", "segment")
IGNORE = 255


def target_task(targets) -> str:
    """Return ``'localize'``, ``'detect'`` or ``'segment'`` from the keys and shapes of ``targets``.

    Raises:
        TypeError: ``targets`` is not a dict.
        ValueError: the keys or shapes match no task.
    """
    if not isinstance(targets, dict):
        raise TypeError(f"targets must be a dict of tensors, got {type(targets).__name__}")
    if "masks" in targets:
        return "segment"
    boxes = targets.get("boxes")
    if isinstance(boxes, torch.Tensor) and "labels" in targets:
        if boxes.ndim == 2:
            return "localize"
        if boxes.ndim == 3:
            return "detect"
    raise ValueError(f"targets must be {{'labels', 'boxes'}} (localize: boxes (N, 4); detect: "
                     f"boxes (N, M, 4)) or {{'masks'}} (segment), got keys {sorted(targets)!r}")


def _check(x, targets) -> str:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N, C, H, W), got "
                         f"{getattr(x, 'shape', type(x).__name__)!r}")
    task = target_task(targets)
    n, _, h, w = x.shape
    if task == "segment":
        masks = targets["masks"]
        if masks.shape != (n, h, w):
            raise ValueError(f"targets['masks'] must have shape (N, H, W) = {(n, h, w)!r}, got "
                             f"{tuple(masks.shape)!r}")
    elif targets["boxes"].shape[0] != n or targets["boxes"].shape[-1] != 4:
        raise ValueError(f"targets['boxes'] must have shape (N, 4) or (N, M, 4) with N = {n}, "
                         f"got {tuple(targets['boxes'].shape)!r}")
    return task


class TargetAugmentation(Augmentation):
    """Base class of an augmentation whose ``forward`` takes and returns ``(x, targets)``.

    Subclasses implement ``apply(x, targets, task, generator)``. See the module docstring for
    the target formats and the rules for boxes and masks.

    Args:
        p: probability that each sample is augmented (drawn per sample).
        seed, generator: see ``cnnkit.augment.base.Augmentation``.

    Shape:
        x: (N, C, H, W) -> (N, C, H, W); targets: same keys, shapes and dtypes.

    Raises:
        ValueError: bad shapes or keys, ``p`` outside [0, 1], a generator on another device.
    """

    def forward(self, x: torch.Tensor, targets: Targets, *,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, Targets]:
        """Augment a batch and its targets (see the class docstring)."""
        task = _check(x, targets)
        if x.shape[0] == 0:
            return x, targets
        return self.apply(x, targets, task, self.generator_for(x.device, generator))


# ---------------------------------------------------------------- box helpers

def _valid(targets: Targets) -> torch.Tensor:
    """Which boxes are real (not padding). Shape: like ``labels``, bool."""
    return targets["labels"] >= 0


def _finish_detect(targets: Targets, moved: torch.Tensor, size: tuple[int, int],
                   min_visible: float) -> Targets:
    """Clip ``moved`` (N, M, 4) to the image and drop boxes keeping < min_visible of their area."""
    h, w = size
    clipped = moved.clone()
    clipped[..., 0::2] = clipped[..., 0::2].clamp(0, w)
    clipped[..., 1::2] = clipped[..., 1::2].clamp(0, h)
    area = (moved[..., 2] - moved[..., 0]) * (moved[..., 3] - moved[..., 1])      # (N, M)
    kept_area = (clipped[..., 2] - clipped[..., 0]) * (clipped[..., 3] - clipped[..., 1])
    keep = _valid(targets) & (kept_area > 0) & (kept_area >= min_visible * area)
    out = dict(targets)
    out["labels"] = targets["labels"].masked_fill(~keep, -1)
    out["boxes"] = clipped.masked_fill(~keep.unsqueeze(-1), 0)  # (N, M) -> (N, M, 1)
    if "ignore" in targets:
        out["ignore"] = targets["ignore"] & keep
    return out


def _shift_targets(targets: Targets, task: str, dy: torch.Tensor, dx: torch.Tensor,
                   pad: tuple[int, int], size: tuple[int, int], min_visible: float) -> Targets:
    """Move boxes by (dx, dy) pixels or shift masks (uncovered pixels 255). dy, dx: (N,)."""
    out = dict(targets)
    if task == "segment":
        masks = targets["masks"].unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        out["masks"] = shift_images(masks, dy, dx, pad, fill=IGNORE).squeeze(1)  # -> (N, H, W)
        return out
    boxes = targets["boxes"]
    offset = torch.stack([dx, dy, dx, dy], dim=-1).to(boxes.dtype)  # (N,) x 4 -> (N, 4)
    if task == "localize":
        out["boxes"] = boxes + offset
        return out
    return _finish_detect(targets, boxes + offset.unsqueeze(1), size, min_visible)  # (N, 1, 4)


def _clamp_shift(targets: Targets, dy: torch.Tensor, dx: torch.Tensor,
                 size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Clamp localisation shifts so the box stays inside: dx in [-x_min, W - x_max]."""
    h, w = size
    boxes = targets["boxes"]
    low_x, high_x = (-boxes[:, 0]).ceil(), (w - boxes[:, 2]).floor()
    low_y, high_y = (-boxes[:, 1]).ceil(), (h - boxes[:, 3]).floor()
    dx = torch.minimum(torch.maximum(dx, low_x.long()), high_x.long().clamp_min(0))
    dy = torch.minimum(torch.maximum(dy, low_y.long()), high_y.long().clamp_min(0))
    return dy, dx


def _check_visible(min_visible) -> float:
    if isinstance(min_visible, bool) or not isinstance(min_visible, (int, float)) \
            or not 0 <= min_visible <= 1:
        raise ValueError(f"min_visible must be a share of the box area in [0, 1], got "
                         f"{min_visible!r}; e.g. 0.25 drops boxes with under a quarter left")
    return float(min_visible)


# ---------------------------------------------------------------- flips

class TargetFlip(TargetAugmentation):
    """Mirror images left-right (or upside down) with their boxes and masks, probability ``p``.

    A box (x_min, x_max) becomes (W - x_max, W - x_min); padding boxes stay (0, 0, 0, 0).
    Flipping twice with ``p=1`` is the identity.

    Args:
        vertical: mirror the height axis instead of the width axis.
        p, seed, generator: see ``TargetAugmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); boxes (N, 4) / (N, M, 4), masks (N, H, W) unchanged shapes.

    Example:
        >>> flip = TargetFlip(p=1.0)
        >>> x, t = flip(torch.rand(1, 1, 8, 8), {"labels": torch.tensor([0]),
        ...                                      "boxes": torch.tensor([[1., 2., 3., 5.]])})
        >>> t["boxes"].tolist()
        [[5.0, 2.0, 7.0, 5.0]]
    """

    def __init__(self, vertical: bool = False, p: float = 0.5, *, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        self.vertical = bool(vertical)

    def apply(self, x, targets, task, generator):
        n, _, h, w = x.shape
        chosen = self.selected(n, generator, x.device)  # (N,) bool
        axis = -2 if self.vertical else -1
        x = torch.where(chosen.view(n, 1, 1, 1), x.flip(axis), x)  # (N,) -> (N, 1, 1, 1)
        out = dict(targets)
        if task == "segment":
            masks = targets["masks"]
            out["masks"] = torch.where(chosen.view(n, 1, 1), masks.flip(axis), masks)
            return x, out
        boxes = targets["boxes"]
        lo, hi, extent = (1, 3, h) if self.vertical else (0, 2, w)
        flipped = boxes.clone()
        flipped[..., lo] = extent - boxes[..., hi]
        flipped[..., hi] = extent - boxes[..., lo]
        pick = chosen.view(n, *([1] * (boxes.ndim - 1)))  # (N,) -> (N, 1) or (N, 1, 1)
        if task == "detect":
            pick = pick & _valid(targets).unsqueeze(-1)  # padding rows stay zero
        out["boxes"] = torch.where(pick, flipped, boxes)
        return x, out

    def to_spec(self) -> str:
        return spec_token("vflip" if self.vertical else "flip", [] if self.p == 0.5 else [self.p])


# ---------------------------------------------------------------- crop and translate

class TargetShift(TargetAugmentation):
    """Shift images by whole pixels with their boxes and masks (``crop(p)`` and ``translate(f)``).

    ``TargetShift(pad)`` is ``crop(pad)``: pad by ``pad`` pixels and crop back at a random
    offset, i.e. a shift uniform in the integers [-pad, pad] per axis. ``translate(f)`` is the
    same with ``pad = round(f * H)`` rows and ``round(f * W)`` columns. For localisation the
    drawn shift is clamped into [-x_min, W - x_max] (and the same for y), so the box stays whole.

    Args:
        max_shift: an int is pixels on each side; a float in [0, 1) a fraction of H and W.
        min_visible: detection boxes keeping less than this share of their area are dropped.
        p, seed, generator: see ``TargetAugmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); targets keep their shapes.

    Raises:
        ValueError: a negative shift, a fraction not below 1, ``min_visible`` outside [0, 1].

    Example:
        >>> crop = TargetShift(4, seed=0)
        >>> masks = torch.zeros(2, 16, 16, dtype=torch.uint8)
        >>> x, t = crop(torch.rand(2, 1, 16, 16), {"masks": masks})
    """

    def __init__(self, max_shift: int | float = 4, *, name: str = "crop",
                 min_visible: float = 0.25, p: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, float)) \
                or max_shift < 0 or (isinstance(max_shift, float) and max_shift >= 1):
            raise ValueError(f"max_shift must be whole pixels (int >= 0) or a fraction in "
                             f"[0, 1), got {max_shift!r}")
        self.max_shift = max_shift
        self.name = name
        self.min_visible = _check_visible(min_visible)

    def apply(self, x, targets, task, generator):
        n, _, h, w = x.shape
        if isinstance(self.max_shift, int):
            pad = (min(self.max_shift, h), min(self.max_shift, w))
        else:
            pad = (round(self.max_shift * h), round(self.max_shift * w))
        keep = ~self.selected(n, generator, x.device)
        dy = torch.randint(-pad[0], pad[0] + 1, (n,), generator=generator, device=x.device)
        dx = torch.randint(-pad[1], pad[1] + 1, (n,), generator=generator, device=x.device)
        dy, dx = dy.masked_fill(keep, 0), dx.masked_fill(keep, 0)
        if task == "localize":
            dy, dx = _clamp_shift(targets, dy, dx, (h, w))
        x = shift_images(x, dy, dx, pad)
        return x, _shift_targets(targets, task, dy, dx, pad, (h, w), self.min_visible)

    def to_spec(self) -> str:
        return spec_token(self.name, [self.max_shift], **({"p": self.p} if self.p != 1 else {}))


# ---------------------------------------------------------------- scale

class TargetScale(TargetAugmentation):
    """Zoom images about their centre by a factor uniform in ``scale``, with boxes and masks.

    A point at x moves to ``W/2 + s * (x - W/2)`` (same for y); > 1 zooms in. Images are
    resampled bilinearly (uncovered pixels 0), masks with nearest neighbour (uncovered 255).
    For localisation a zoom-in factor is clamped to the largest that keeps the box inside.

    Args:
        scale: (low, high) factor range, 0 < low <= high; ``scale(f)`` means (1 - f, 1 + f).
        min_visible: detection boxes keeping less than this share of their area are dropped.
        p, seed, generator: see ``TargetAugmentation``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); targets keep their shapes.

    Raises:
        ValueError: a bad range or ``min_visible``.

    Example:
        >>> zoom = TargetScale((0.9, 1.1), seed=0)
        >>> x, t = zoom(torch.rand(2, 3, 16, 16), {"labels": torch.tensor([0, 1]),
        ...                                        "boxes": torch.tensor([[2., 2., 8., 8.]] * 2)})
    """

    def __init__(self, scale: tuple[float, float] = (0.9, 1.1), *, min_visible: float = 0.25,
                 p: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        if not isinstance(scale, (tuple, list)) or len(scale) != 2 \
                or not all(isinstance(s, (int, float)) for s in scale) \
                or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be a (low, high) pair with 0 < low <= high, got "
                             f"{scale!r}; e.g. (0.9, 1.1)")
        self.scale = (float(scale[0]), float(scale[1]))
        self.min_visible = _check_visible(min_visible)

    def _limit(self, targets: Targets, size: tuple[int, int]) -> torch.Tensor:
        """Largest factor keeping each localisation box inside. Shape: (N,)."""
        h, w = size
        boxes = targets["boxes"]
        centre = boxes.new_tensor([w / 2, h / 2, w / 2, h / 2])
        reach = (boxes - centre).abs()  # (N, 4): distance of each edge to the centre
        room = centre.expand_as(boxes)
        return torch.where(reach > 0, room / reach.clamp_min(1e-12), torch.inf).amin(-1)

    def apply(self, x, targets, task, generator):
        n, _, h, w = x.shape
        factor = uniform(n, *self.scale, generator, x.device)
        factor = torch.where(self.selected(n, generator, x.device), factor, 1.0)
        if task == "localize":
            factor = torch.minimum(factor, self._limit(targets, (h, w)).clamp_min(1.0))
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / factor  # output point -> input point
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)  # (N, H, W, 2)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = dict(targets)
        if task == "segment":
            masks = targets["masks"].unsqueeze(1).float() - IGNORE  # (N, H, W) -> (N, 1, H, W)
            moved = F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros",
                                  align_corners=False) + IGNORE
            out["masks"] = moved.squeeze(1).round().to(targets["masks"].dtype)  # -> (N, H, W)
            return x, out
        boxes = targets["boxes"]
        centre = boxes.new_tensor([w / 2, h / 2, w / 2, h / 2])
        view = (n, 1) if task == "localize" else (n, 1, 1)
        moved = centre + factor.to(boxes.dtype).view(view) * (boxes - centre)
        if task == "localize":
            out["boxes"] = moved
            return x, out
        return x, _finish_detect(targets, moved, (h, w), self.min_visible)

    def to_spec(self) -> str:
        return spec_token("scale", list(self.scale), **({"p": self.p} if self.p != 1 else {}))


# ---------------------------------------------------------------- colour and compose

class ColorOnly(nn.Module):
    """Run a colour augmentation of ``cnnkit.augment.color`` on ``x``; targets pass untouched.

    Args:
        augmentation: a ``ColorJitter`` or ``RandomGrayscale``.

    Shape:
        (N, C, H, W) -> (N, C, H, W); ``targets`` is returned as the same object.

    Example:
        >>> op = ColorOnly(ColorJitter(0.2, seed=0))
        >>> x, t = op(torch.rand(2, 3, 8, 8), {"masks": torch.zeros(2, 8, 8, dtype=torch.uint8)})
    """

    def __init__(self, augmentation: Augmentation):
        super().__init__()
        if not isinstance(augmentation, (ColorJitter, RandomGrayscale)):
            raise TypeError(f"augmentation must be a ColorJitter or RandomGrayscale, got "
                            f"{augmentation!r}")
        self.augmentation = augmentation

    def forward(self, x, targets, *, generator: torch.Generator | None = None):
        """Apply the colour op to ``x`` only."""
        _check(x, targets)
        labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        x, _ = self.augmentation(x, labels, generator=generator)
        return x, targets

    def to_spec(self) -> str:
        return self.augmentation.to_spec()


class TargetCompose(Compose):
    """Apply target augmentations in order, sharing one generator (``Compose`` for targets).

    Args:
        augmentations: ``TargetAugmentation`` / ``ColorOnly`` modules (empty = identity).
        seed, generator: the pipeline's generator, passed to every child.

    Shape:
        (N, C, H, W) -> (N, C, H, W); targets keep their shapes.

    Example:
        >>> aug = parse_task_augment("flip,crop(4)", "segment", seed=0)
        >>> masks = torch.zeros(2, 16, 16, dtype=torch.uint8)
        >>> x, t = aug(torch.rand(2, 3, 16, 16), {"masks": masks})
    """

    def _check_item(self, i: int, aug) -> None:
        if not isinstance(aug, (TargetAugmentation, ColorOnly)):
            raise TypeError(f"augmentations[{i}] must be a target augmentation, got {aug!r}")

    def _check_inputs(self, x, targets) -> None:
        _check(x, targets)


# ---------------------------------------------------------------- parsing

def _scale(lo, hi=None, **kw):
    return TargetScale((1 - lo, 1 + lo) if hi is None else (lo, hi), **kw)


def _jitter(brightness, contrast=None, saturation=None, hue=0.0, **kw):
    if contrast is None and saturation is None and hue == 0.0:
        contrast = saturation = brightness
    return ColorOnly(ColorJitter(brightness, contrast or 0.0, saturation or 0.0, hue, **kw))


TASK_NAMES = {
    "flip": (lambda p=0.5, **kw: TargetFlip(False, p, **kw), "flip[(p)]"),
    "vflip": (lambda p=0.5, **kw: TargetFlip(True, p, **kw), "vflip[(p)]"),
    "crop": (lambda pad, **kw: TargetShift(pad, name="crop", **kw), "crop(pad)"),
    "translate": (lambda f, **kw: TargetShift(f, name="translate", **kw),
                  "translate(fraction or px)"),
    "scale": (_scale, "scale(f) or scale(lo, hi)"),
    "jitter": (_jitter, "jitter(b[, c, s, h])"),
    "grayscale": (lambda p=0.1, **kw: ColorOnly(RandomGrayscale(p, **kw)), "grayscale[(p)]"),
}


def parse_task_augment(spec: str, task: str, *, seed: int | None = 0) -> TargetCompose:
    """Build a target-preserving pipeline from an ``--augment`` string for a box or mask task.

    Accepted names: flip, vflip, crop(pad), translate(f), scale(f) (factor in [1-f, 1+f]) or
    scale(lo, hi), jitter(...), grayscale; keywords ``p=`` (and ``min_visible=`` for crop,
    translate, scale). Label-mixing or non-invertible ops (mixup, cutmix, rotate, affine,
    erase, cutout) are refused.

    Args:
        spec: e.g. ``"flip,crop(4),jitter(0.2)"``; ``""`` or ``"none"`` is no augmentation.
        task: ``'localize'``, ``'detect'`` or ``'segment'``.
        seed: seed of the pipeline's generator.

    Returns:
        A ``TargetCompose``.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: unknown task, an op not allowed for these tasks (named, with the allowed
            list), bad syntax or arguments.

    Example:
        >>> parse_task_augment("flip,crop(4)", "detect").to_spec()
        'flip,crop(4)'
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS!r}, got {task!r}; for classification use "
                         "cnnkit.augment.parse_augment")
    if not isinstance(spec, str):
        raise TypeError(f"augment spec must be a string like 'flip,crop(4)', got {spec!r}")
    allowed = ", ".join(TASK_NAMES)
    modules = []
    for name, written, arguments, start in spec_tokens(spec, f"allowed for {task!r}: {allowed}"):
        if name not in TASK_NAMES:
            raise ValueError(f"augmentation {written!r} is not allowed for task {task!r} "
                             f"(it does not keep boxes and masks aligned with the image); "
                             f"allowed: {allowed}")
        args, keywords = spec_arguments(arguments, spec, start)
        build, usage = TASK_NAMES[name]
        try:
            modules.append(build(*args, **keywords))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"wrong arguments for {name!r} in {spec!r} ({exc}); "
                             f"usage: {usage}") from None
    return TargetCompose(modules, seed=seed)
