"""The --augment spec grammar: what each name builds, round trips, and pinned error messages."""
from __future__ import annotations

import pytest
import torch

from cnnkit.augment import (ColorJitter, Compose, CutMix, Cutout, MixUp, RandomAffine, RandomCrop,
                            RandomErasing, RandomFlip, RandomGrayscale, RandomRotation,
                            RandomScale, RandomTranslate, parse_augment)


def test_the_issue_example_builds_the_right_modules():
    aug = parse_augment("flip,crop(4),rotate(10),jitter(0.2)")
    assert isinstance(aug, Compose) and len(aug) == 4
    flip, crop, rotate, jitter = aug
    assert isinstance(flip, RandomFlip) and flip.horizontal and not flip.vertical and flip.p == 0.5
    assert isinstance(crop, RandomCrop) and crop.padding == (4, 4)
    assert isinstance(rotate, RandomRotation) and rotate.degrees == 10
    assert isinstance(jitter, ColorJitter)
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.8, 1.2)
    assert jitter.hue == 0


def test_every_name_and_keywords():
    aug = parse_augment(" vflip(0.3), translate(0.1) ,scale(0.9, 1.1), "
                        "affine(5,0.8,1.2,0.1,fill=0.5),"
                        "jitter(0.1,0.2,0,0.05,p=0.5),grayscale,erase(0.25,value=0.5),cutout(8),"
                        "crop(2,3,padding_mode=reflect),mixup,cutmix(0.5)", num_classes=7)
    kinds = [type(a) for a in aug]
    assert kinds == [RandomFlip, RandomTranslate, RandomScale, RandomAffine, ColorJitter,
                     RandomGrayscale, RandomErasing, Cutout, RandomCrop, MixUp, CutMix]
    vflip, translate, scale, affine, jitter, gray, erase, cutout, crop, mixup, cutmix = aug
    assert vflip.vertical and not vflip.horizontal and vflip.p == 0.3
    assert translate.max_shift == 0.1 and scale.scale == (0.9, 1.1)
    assert (affine.degrees, affine.scale, affine.translate) == (5, (0.8, 1.2), 0.1)
    assert affine.fill == 0.5
    assert jitter.contrast == (0.8, 1.2) and jitter.saturation == (1.0, 1.0) and jitter.p == 0.5
    assert gray.p == 0.1 and erase.p == 0.25 and erase.value == 0.5 and cutout.size == 8
    assert crop.padding == (2, 3) and crop.padding_mode == "reflect"
    assert mixup.alpha == 0.2 and mixup.num_classes == 7 and cutmix.alpha == 0.5


@pytest.mark.parametrize("spec", [
    "flip,crop(4),rotate(10),jitter(0.2,0.2,0.2,0)",
    "vflip(0.3),translate(3),translate(0.125),scale(0.9,1.1),affine(5,0.8,1.2,0.1,fill=0.5)",
    "grayscale(0.2),erase(0.5,scale_low=0.1,scale_high=0.2,value=1),cutout(8,p=0.5)",
    "crop(2,3,padding_mode=reflect,p=0.5),rotate(7.5,fill=0.5),mixup(0.4),cutmix(1,p=0.5)",
    "none",
])
def test_to_spec_round_trips(spec):
    aug = parse_augment(spec, num_classes=3)
    assert aug.to_spec() == spec
    assert parse_augment(aug.to_spec(), num_classes=3).to_spec() == spec


def test_seed_reproduces_the_pipeline_and_empty_spec_is_identity():
    x, y = torch.rand(8, 3, 10, 10), torch.arange(8)
    a = parse_augment("flip,crop(2),rotate(10),jitter(0.2)", seed=3)(x, y)[0]
    b = parse_augment("flip,crop(2),rotate(10),jitter(0.2)", seed=3)(x, y)[0]
    assert torch.equal(a, b)
    assert torch.equal(parse_augment("")(x, y)[0], x)


@pytest.mark.parametrize("spec,match", [
    ("flip,crp(4)", r"unknown augmentation 'crp' at position 5 of 'flip,crp\(4\)' \(did you mean "
                    r"'crop'.*\); valid names: flip, vflip, crop, translate"),
    ("flip,,crop(4)", r"cannot read the augmentation at position 5 .* valid names: flip"),
    ("flip crop", r"cannot read the augmentation at position 0"),
    ("flip,", r"ends with a comma"),
    ("crop(4", r"cannot read the augmentation at position 0"),
    ("crop(a-b)", r"bad argument 'a-b' at position 0"),
    ("crop(p=1,4)", r"positional argument '4' after a keyword at position 0"),
    ("flip,rotate(1,2,3)",
     r"wrong arguments for 'rotate' at position 5 .*usage: rotate\(degrees\)"),
    ("scale(2,1)", r"in 'scale' at position 0 of 'scale\(2,1\)': scale must satisfy 0 < low"),
    ("flip,mixup(0.2)", r"'mixup' at position 5 .* needs the number of classes: call "
                        r"parse_augment\(spec, num_classes=K\)"),
])
def test_errors_point_at_the_bad_token(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_augment(spec)


def test_spec_must_be_a_string():
    with pytest.raises(TypeError, match=r"augment spec must be a string .* got \['flip'\]"):
        parse_augment(["flip"])
