"""Label-mixing augmentations: MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019).

Each sample is paired with another sample of the same batch (a random permutation) and the two
are blended with a weight lam ~ Beta(alpha, alpha) drawn **per sample**; the labels are blended
with the same weight, so they come back as (N, K) float soft labels (train with a loss that takes
soft targets, e.g. ``F.cross_entropy(logits, y_soft)``). They need ``num_classes`` to one-hot the
int labels. They work on any value scale and, like all augmentations, only on training batches.
"""
from __future__ import annotations

import torch

from cnnkit._checks import check_positive_int
from cnnkit.augment.base import Augmentation, Batch, beta, spec_token
from cnnkit.augment.erase import box_mask


def soft_labels(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Turn int labels into one-hot rows (soft labels pass through, checked and cast).

    Shape:
        (N,) int64 or (N, K) float -> (N, K) with K = ``num_classes``.

    Raises:
        ValueError: a label outside [0, num_classes), or soft labels with another K.
    """
    if y.ndim == 2:
        if y.shape[1] != num_classes:
            raise ValueError(f"soft labels have {y.shape[1]} columns but num_classes="
                             f"{num_classes!r}; build the augmentation with the dataset's "
                             "number of classes")
        return y.to(dtype)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}) for num_classes={num_classes!r}, "
                         f"got labels from {int(y.min())} to {int(y.max())}")
    return torch.nn.functional.one_hot(y, num_classes).to(dtype)  # (N,) -> (N, K)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a number > 0, got {alpha!r}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (the Beta(alpha, alpha) mixing weight; 0.2 for "
                         f"mixup and 1.0 for cutmix are common), got {alpha!r}")
    return float(alpha)


class _Mix(Augmentation):
    """Shared set-up of MixUp and CutMix: alpha, num_classes, partner permutation and weights."""

    token = ""

    def __init__(self, alpha: float, *, num_classes: int, p: float = 1.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(p=p, seed=seed, generator=generator)
        self.alpha = _check_alpha(alpha)
        self.num_classes = check_positive_int(num_classes, "num_classes")

    def sample(self, n: int, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the partner permutation (n,) int64 and per-sample weights lam (n,) float32.

        Samples not selected (probability 1 - p) get lam = 1, i.e. stay unchanged.
        """
        perm = torch.randperm(n, generator=generator, device=device)
        lam = beta(n, self.alpha, generator, device)
        apply = torch.rand(n, generator=generator, device=device) < self.p
        return perm, torch.where(apply, lam, 1.0)

    def to_spec(self) -> str:
        keywords = {"p": self.p} if self.p != 1 else {}
        return spec_token(self.token, [self.alpha], **keywords)


class MixUp(_Mix):
    """Blend each image and its label with a random partner: lam*x + (1-lam)*x[perm].

    Args:
        alpha: Beta(alpha, alpha) parameter (``mixup(0.2)`` in a spec string); small alpha keeps
            lam near 0 or 1 (mild mixing), alpha = 1 makes lam uniform.
        num_classes: number of classes K (required keyword), to one-hot int labels
            (``parse_augment`` fills it in).
        p: probability that a sample is mixed (unmixed samples still get one-hot labels).
        seed, generator: see ``Augmentation``.

    Shape:
        x: (N, C, H, W) -> (N, C, H, W). y: (N,) int64 or (N, K) float -> (N, K) float (x's dtype).
        x_out[i] = lam[i] x[i] + (1 - lam[i]) x[perm[i]], and y_out likewise with one-hot y.

    Raises:
        ValueError: ``alpha`` <= 0, ``num_classes`` < 1, or labels outside [0, num_classes).

    Example:
        >>> mix = MixUp(0.2, num_classes=10, seed=0)
        >>> x, y = mix(torch.rand(8, 3, 32, 32), torch.arange(8))
        >>> y.shape
        torch.Size([8, 10])
    """

    token = "mixup"

    def __init__(self, alpha: float = 0.2, *, num_classes: int, p: float = 1.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(alpha, num_classes=num_classes, p=p, seed=seed, generator=generator)

    def apply(self, x, y, generator) -> Batch:
        n = x.shape[0]
        y = soft_labels(y, self.num_classes, x.dtype)
        perm, lam = self.sample(n, generator, x.device)
        lam = lam.to(x.dtype)
        lam_x = lam.view(n, 1, 1, 1)  # (N,) -> (N, 1, 1, 1)
        lam_y = lam.view(n, 1)        # (N,) -> (N, 1)
        return lam_x * x + (1 - lam_x) * x[perm], lam_y * y + (1 - lam_y) * y[perm]


class CutMix(_Mix):
    """Paste a random box from a partner image into each image; mix labels by area.

    The box covers a fraction 1 - lam of the image (sides H*sqrt(1-lam), W*sqrt(1-lam), rounded),
    centred on a uniform random pixel and clipped at the border; the label weight of the partner
    is the fraction of pixels actually pasted, so y_out = (1 - a) y + a y[perm] with a = pasted
    area / (H*W).

    Args:
        alpha: Beta(alpha, alpha) parameter (``cutmix(1.0)`` in a spec string).
        num_classes: number of classes K (required keyword; ``parse_augment`` fills it in).
        p: probability that a sample gets a box.
        seed, generator: see ``Augmentation``.

    Shape:
        x: (N, C, H, W) -> (N, C, H, W). y: (N,) int64 or (N, K) float -> (N, K) float (x's dtype).

    Raises:
        ValueError: ``alpha`` <= 0, ``num_classes`` < 1, or labels outside [0, num_classes).

    Example:
        >>> x, y = CutMix(1.0, num_classes=10, seed=0)(torch.rand(8, 3, 32, 32), torch.arange(8))
    """

    token = "cutmix"

    def __init__(self, alpha: float = 1.0, *, num_classes: int, p: float = 1.0,
                 seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__(alpha, num_classes=num_classes, p=p, seed=seed, generator=generator)

    def apply(self, x, y, generator) -> Batch:
        n, _, h, w = x.shape
        y = soft_labels(y, self.num_classes, x.dtype)
        perm, lam = self.sample(n, generator, x.device)
        cut = torch.sqrt(1.0 - lam)
        box_h = (cut * h).round().long()
        box_w = (cut * w).round().long()
        cy = torch.randint(0, h, (n,), generator=generator, device=x.device)
        cx = torch.randint(0, w, (n,), generator=generator, device=x.device)
        mask = box_mask(cy - box_h // 2, cx - box_w // 2, box_h, box_w, (h, w))  # (N, 1, H, W)
        pasted = mask.sum(dim=(1, 2, 3)).to(x.dtype) / (h * w)                  # (N,)
        weight = pasted.view(n, 1)                                               # (N,) -> (N, 1)
        return torch.where(mask, x[perm], x), (1 - weight) * y + weight * y[perm]
