"""The augmentation contract: batch checks, seeds and generators, Compose."""
from __future__ import annotations

import pytest
import torch

from cnnkit.augment import (ColorJitter, Compose, CutMix, Cutout, MixUp, RandomCrop,
                            RandomErasing, RandomFlip, RandomGrayscale, RandomRotation,
                            RandomTranslate)
from cnnkit.augment.base import check_generator_device

ALL = [
    lambda **kw: RandomFlip(**kw),
    lambda **kw: RandomCrop(3, **kw),
    lambda **kw: RandomTranslate(2, **kw),
    lambda **kw: RandomRotation(30, **kw),
    lambda **kw: ColorJitter(0.3, 0.3, 0.3, 0.1, **kw),
    lambda **kw: RandomGrayscale(0.5, **kw),
    lambda **kw: RandomErasing(0.9, **kw),
    lambda **kw: Cutout(4, **kw),
    lambda **kw: MixUp(0.4, num_classes=10, **kw),
    lambda **kw: CutMix(1.0, num_classes=10, **kw),
]


def _batch(n=16):
    gen = torch.Generator().manual_seed(123)
    return torch.rand(n, 3, 12, 12, generator=gen), torch.randint(0, 10, (n,), generator=gen)


@pytest.mark.parametrize("make", ALL)
def test_same_seed_same_output_different_seed_different_output(make):
    x, y = _batch()
    a = make(seed=7)(x, y)
    b = make(seed=7)(x, y)
    c = make(seed=8)(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("make", ALL)
def test_generator_and_global_rng_reproduce_too(make):
    x, y = _batch()
    a = make(generator=torch.Generator().manual_seed(3))(x, y)[0]
    b = make()(x, y, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)
    torch.manual_seed(5)
    c = make()(x, y)[0]
    torch.manual_seed(5)
    assert torch.equal(c, make()(x, y)[0])


def test_a_seeded_augmentation_keeps_drawing_new_numbers():
    x, y = _batch()
    flip = RandomRotation(30, seed=0)
    assert not torch.equal(flip(x, y)[0], flip(x, y)[0])


def test_compose_applies_in_order_with_one_seed():
    x, y = _batch()
    pipeline = Compose([RandomFlip(p=1.0), RandomCrop(0), MixUp(0.2, num_classes=10)], seed=1)
    out, soft = pipeline(x, y)
    again = Compose([RandomFlip(p=1.0), RandomCrop(0), MixUp(0.2, num_classes=10)], seed=1)(x, y)
    assert torch.equal(out, again[0]) and torch.equal(soft, again[1])
    assert soft.shape == (16, 10)
    flipped_only = Compose([RandomFlip(p=1.0), MixUp(0.2, num_classes=10, p=0.0)], seed=1)
    assert torch.equal(flipped_only(x, y)[0], x.flip(-1))
    assert len(pipeline) == 3 and isinstance(pipeline[0], RandomFlip)
    assert pipeline.to_spec() == "flip(1),crop(0),mixup(0.2)"
    assert Compose([]).to_spec() == "none"
    assert torch.equal(Compose([])(x, y)[0], x)


def test_empty_batch_passes_through():
    x, y = torch.rand(0, 3, 4, 4), torch.zeros(0, dtype=torch.long)
    out, y_out = RandomRotation(10, seed=0)(x, y)
    assert out.shape == (0, 3, 4, 4) and y_out.shape == (0,)


@pytest.mark.parametrize("x,y,error,match", [
    (torch.rand(3, 4, 4), torch.zeros(3, dtype=torch.long), ValueError, r"shape \(N, C, H, W\)"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), TypeError,
     r"float batch .* x\.float\(\) / 255"),
    (torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.int32), TypeError, r"int64 .* y\.long\(\)"),
    (torch.rand(2, 1, 4, 4), torch.zeros(3, dtype=torch.long), ValueError,
     r"2 images and 3 labels"),
    (torch.rand(2, 1, 4, 4), torch.zeros(2, 2, dtype=torch.long), TypeError, r"soft labels"),
])
def test_bad_batches_are_explained(x, y, error, match):
    with pytest.raises(error, match=match):
        RandomFlip()(x, y)


def test_bad_seed_and_generator_arguments():
    with pytest.raises(ValueError, match=r"seed or generator, not both"):
        RandomFlip(seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"seed must be an int or None, got '1'"):
        RandomFlip(seed="1")
    with pytest.raises(TypeError, match=r"augmentations\[1\] must be a cnnkit augmentation"):
        Compose([RandomFlip(), torch.nn.ReLU()])


def test_generator_on_another_device_is_explained():
    # No CUDA here: check the device test itself with a CPU generator and a CUDA device.
    with pytest.raises(ValueError, match=r"generator lives on 'cpu' but the batch is on 'cuda'.*"
                                         r"torch\.Generator\(device='cuda'\)"):
        check_generator_device(torch.Generator(), torch.device("cuda"))
    check_generator_device(torch.Generator(), torch.device("cpu"))
    check_generator_device(None, torch.device("cuda"))


def test_seeded_generators_are_made_per_device_on_first_use():
    flip = RandomFlip(seed=4)
    first = flip.generator_for(torch.device("cpu"))
    assert first.device.type == "cpu" and flip.generator_for(torch.device("cpu")) is first
    assert first.initial_seed() == 4
