"""Build an augmentation pipeline from a CLI string like ``"flip,crop(4),rotate(10),jitter(0.2)"``.

Grammar (spaces are ignored)::

    spec  := "none" | "" | token ("," token)*
    token := name [ "(" [arg ("," arg)*] ")" ]
    arg   := number | key "=" (number | word)       positional arguments come first

Names (positional arguments in order; every token also takes the keywords of its class,
e.g. ``p=``, ``fill=``, ``value=``, ``padding_mode=reflect``)::

    flip[(p)]                  RandomFlip left-right, p = 0.5
    vflip[(p)]                 RandomFlip upside down, p = 0.5
    crop(pad[, pad_w])         RandomCrop: pad by pad pixels, crop back at a random offset
    translate(px | fraction)   RandomTranslate: shift by up to px pixels (int) or a fraction
    rotate(deg)                RandomRotation in [-deg, deg]
    scale(lo, hi)              RandomScale: zoom factor in [lo, hi]
    affine(deg, lo, hi, frac)  RandomAffine: rotate + scale + shift in one resampling
    jitter(b[, c, s, h])       ColorJitter; jitter(v) means b = c = s = v (hue 0), with two or
                               more values the missing ones are 0
    grayscale[(p)]             RandomGrayscale, p = 0.1
    erase[(p)]                 RandomErasing, p = 0.5 (keywords scale_low, scale_high,
                               ratio_low, ratio_high, value)
    cutout(size)               Cutout: a size x size square
    mixup[(alpha)]             MixUp, alpha = 0.2 (needs num_classes)
    cutmix[(alpha)]            CutMix, alpha = 1.0 (needs num_classes)

``Compose.to_spec()`` writes the same grammar, so ``parse_augment(aug.to_spec())`` rebuilds
``aug`` (this is how a run's config.json stores its augmentation).
"""
from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cnnkit.augment.base import Augmentation, Compose
from cnnkit.augment.color import ColorJitter, RandomGrayscale
from cnnkit.augment.erase import Cutout, RandomErasing
from cnnkit.augment.geometric import (RandomAffine, RandomCrop, RandomFlip, RandomRotation,
                                      RandomScale, RandomTranslate)
from cnnkit.augment.mix import CutMix, MixUp

_TOKEN_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^()]*)\))?\s*(?:,|$)")
_INT_RE = re.compile(r"^[+-]?\d+$")
_WORD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------- the names of the grammar

def _flip(p=0.5, **kw):
    return RandomFlip(horizontal=True, vertical=False, p=p, **kw)


def _vflip(p=0.5, **kw):
    return RandomFlip(horizontal=False, vertical=True, p=p, **kw)


def _crop(pad, pad_w=None, **kw):
    return RandomCrop(pad if pad_w is None else (pad, pad_w), **kw)


def _scale(lo, hi, **kw):
    return RandomScale((lo, hi), **kw)


def _affine(degrees, lo=1.0, hi=1.0, translate=0.0, **kw):
    return RandomAffine(degrees, scale=(lo, hi), translate=translate, **kw)


def _jitter(brightness, contrast=None, saturation=None, hue=0.0, **kw):
    if contrast is None and saturation is None and hue == 0.0:
        contrast = saturation = brightness
    return ColorJitter(brightness, contrast or 0.0, saturation or 0.0, hue, **kw)


def _erase(p=0.5, scale_low=0.02, scale_high=0.33, ratio_low=0.3, ratio_high=3.3, **kw):
    return RandomErasing(p, (scale_low, scale_high), (ratio_low, ratio_high), **kw)


@dataclass(frozen=True)
class _Name:
    """One name of the grammar: how to build it, its usage line, whether it needs num_classes."""

    build: Callable[..., Augmentation]
    usage: str
    needs_classes: bool = False


NAMES: dict[str, _Name] = {
    "flip": _Name(_flip, "flip[(p)]"),
    "vflip": _Name(_vflip, "vflip[(p)]"),
    "crop": _Name(_crop, "crop(pad[, pad_w])"),
    "translate": _Name(RandomTranslate, "translate(px or fraction)"),
    "rotate": _Name(RandomRotation, "rotate(degrees)"),
    "scale": _Name(_scale, "scale(lo, hi)"),
    "affine": _Name(_affine, "affine(degrees[, lo, hi, translate])"),
    "jitter": _Name(_jitter, "jitter(b[, c, s, h])"),
    "grayscale": _Name(RandomGrayscale, "grayscale[(p)]"),
    "erase": _Name(_erase, "erase[(p)]"),
    "cutout": _Name(Cutout, "cutout(size)"),
    "mixup": _Name(MixUp, "mixup[(alpha)]", needs_classes=True),
    "cutmix": _Name(CutMix, "cutmix[(alpha)]", needs_classes=True),
}


# ---------------------------------------------------------------- parsing

def spec_tokens(spec: str, valid: str) -> Iterator[tuple[str, str, str, int]]:
    """Walk an ``--augment`` string: ``(name in lower case, name as written, argument text,
    position)`` per ``name`` or ``name(args)``, shared by :func:`parse_augment` and the
    target-aware parser of :mod:`cnnkit.augment.targets`. ``""`` and ``"none"`` give nothing.

    Raises:
        ValueError: text that is not ``name(args)`` separated by commas (``valid`` ends the
            message with what may be written), or a trailing comma.
    """
    if spec.strip().lower() in ("", "none"):
        return
    position = 0
    while position < len(spec):
        match = _TOKEN_RE.match(spec, position)
        if match is None:
            raise ValueError(f"cannot read the augmentation {_where(spec, position)} "
                             f"({spec[position:]!r}): expected name or name(args) separated by "
                             f"commas; {valid}")
        yield match.group(1).lower(), match.group(1), match.group(2) or "", match.start(1)
        position = match.end()
        if spec[match.end() - 1:match.end()] == "," and position == len(spec):
            raise ValueError(f"the spec {spec!r} ends with a comma; remove it or add a name")


def _where(spec: str, position: int) -> str:
    return f"at position {position} of {spec!r}"


def _value(text: str, spec: str, position: int):
    """A number (int when written without a point) or a bare word such as ``reflect``."""
    if _INT_RE.match(text):
        return int(text)
    if _WORD_RE.match(text):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad argument {text!r} {_where(spec, position)}: expected a number "
                         "like 4 or 0.2, or key=value") from None


def spec_arguments(text: str, spec: str, position: int) -> tuple[list, dict]:
    args, keywords = [], {}
    if not text.strip():
        return args, keywords
    for part in text.split(","):
        part = part.strip()
        if "=" in part:
            key, _, raw = (s.strip() for s in part.partition("="))
            if not _WORD_RE.match(key) or key in keywords:
                raise ValueError(f"bad keyword {part!r} {_where(spec, position)}: expected "
                                 "key=value with a key used once, e.g. p=0.5")
            keywords[key] = _value(raw, spec, position)
        elif keywords:
            raise ValueError(f"positional argument {part!r} after a keyword "
                             f"{_where(spec, position)}; put numbers before key=value")
        else:
            args.append(_value(part, spec, position))
    return args, keywords


def _build(name: str, args: list, keywords: dict, *, spec: str, position: int,
           num_classes: int | None) -> Augmentation:
    entry = NAMES[name]
    if entry.needs_classes:
        if num_classes is None:
            raise ValueError(f"{name!r} {_where(spec, position)} mixes labels and needs the "
                             "number of classes: call parse_augment(spec, num_classes=K)")
        keywords = {**keywords, "num_classes": num_classes}
    try:
        inspect.signature(entry.build).bind(*args, **keywords)
    except TypeError as exc:
        raise ValueError(f"wrong arguments for {name!r} {_where(spec, position)} ({exc}); "
                         f"usage: {entry.usage}") from None
    try:
        return entry.build(*args, **keywords)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"in {name!r} {_where(spec, position)}: {exc}") from None


def parse_augment(spec: str, *, num_classes: int | None = None,
                  seed: int | None = None) -> Compose:
    """Turn an augmentation spec string into a ``Compose`` (grammar in the module docstring).

    Args:
        spec: e.g. ``"flip,crop(4),rotate(10),jitter(0.2)"``; ``""`` or ``"none"`` is no
            augmentation.
        num_classes: number of classes, required by ``mixup`` and ``cutmix``.
        seed: seed of the pipeline's generator (same seed, same device: same augmentations).

    Returns:
        A ``Compose`` whose ``to_spec()`` gives back an equivalent spec.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: an unknown name (with the closest valid names and the full list), bad
            syntax or arguments (with the position in ``spec`` and the usage), or mixup/cutmix
            without ``num_classes``.

    Example:
        >>> aug = parse_augment("flip,crop(4),rotate(10),jitter(0.2)", seed=0)
        >>> aug.to_spec()
        'flip,crop(4),rotate(10),jitter(0.2,0.2,0.2,0)'
    """
    if not isinstance(spec, str):
        raise TypeError(f"augment spec must be a string like 'flip,crop(4)', got {spec!r}")
    if spec.strip().lower() in ("", "none"):
        return Compose([], seed=seed)
    augmentations = []
    for name, written, arguments, start in spec_tokens(spec, f"valid names: {', '.join(NAMES)}"):
        if name not in NAMES:
            close = difflib.get_close_matches(name, NAMES, n=2)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(f"unknown augmentation {written!r} {_where(spec, start)}"
                             f"{hint}; valid names: {', '.join(NAMES)}")
        args, keywords = spec_arguments(arguments, spec, start)
        augmentations.append(_build(name, args, keywords, spec=spec, position=start,
                                    num_classes=num_classes))
    return Compose(augmentations, seed=seed)
