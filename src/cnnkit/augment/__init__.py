"""Batched data augmentation on tensors, on the training device (CPU or GPU).

Every augmentation is an ``nn.Module``: ``x, y = aug(x, y)`` with a float (N, C, H, W) batch
and (N,) int64 or (N, K) soft labels; each sample gets its own random parameters, drawn in one
batched call from a seeded ``torch.Generator`` (no Python loop over samples). The training
loader applies augmentation to the float 0-1 batch **before** mean/std normalisation, and only
to training batches, never to the validation or test set.

Example:
    >>> aug = parse_augment("flip,crop(4),rotate(10),jitter(0.2)", seed=0)
    >>> x, y = aug(torch.rand(8, 3, 32, 32), torch.arange(8))
    >>> augment_grid(images[:4], aug, path="augment.png")   # or: cnnkit show augment

kornia is not a dependency: ``bench/augment.py`` compares these ops with
``kornia.augmentation`` on CPU; flips and crops here are 2-13x faster, rotation and colour
jitter about as fast (the module docstrings give the numbers).
"""
from cnnkit.augment.base import Augmentation, Compose
from cnnkit.augment.color import ColorJitter, RandomGrayscale
from cnnkit.augment.erase import Cutout, RandomErasing
from cnnkit.augment.geometric import (RandomAffine, RandomCrop, RandomFlip, RandomRotation,
                                      RandomScale, RandomTranslate)
from cnnkit.augment.mix import CutMix, MixUp
from cnnkit.augment.parse import parse_augment

__all__ = [
    "Augmentation", "ColorJitter", "Compose", "CutMix", "Cutout", "MixUp", "RandomAffine",
    "RandomCrop", "RandomErasing", "RandomFlip", "RandomGrayscale", "RandomRotation",
    "RandomScale", "RandomTranslate", "augment_grid", "parse_augment",
]


def __getattr__(name: str):
    # augment_grid imports matplotlib, which training does not need: load it on first use.
    if name == "augment_grid":
        from cnnkit.augment.preview import augment_grid  # import cost: matplotlib, only for preview pictures
        return augment_grid
    raise AttributeError(f"module 'cnnkit.augment' has no attribute {name!r}")
