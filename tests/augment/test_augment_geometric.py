"""Flips, crops, shifts, rotation and scale: identities, references and parameter statistics."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.augment import (RandomAffine, RandomCrop, RandomFlip, RandomRotation, RandomScale,
                            RandomTranslate)
from cnnkit.augment.geometric import shift_images


def _batch(n=6, c=3, h=9, w=7):
    return torch.rand(n, c, h, w), torch.arange(n)


def roll_zero_fill(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference shift of one (C, H, W) image: torch.roll, then zero what wrapped around."""
    out = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))
    if dy > 0:
        out[:, :dy] = 0
    elif dy < 0:
        out[:, dy:] = 0
    if dx > 0:
        out[:, :, :dx] = 0
    elif dx < 0:
        out[:, :, dx:] = 0
    return out


GEOMETRIC = [
    lambda: RandomFlip(p=0.5, seed=1),
    lambda: RandomFlip(horizontal=False, vertical=True, seed=1),
    lambda: RandomCrop(2, seed=1),
    lambda: RandomCrop(2, padding_mode="reflect", seed=1),
    lambda: RandomTranslate(3, seed=1),
    lambda: RandomRotation(20, seed=1),
    lambda: RandomScale((0.8, 1.2), seed=1),
    lambda: RandomAffine(15, scale=(0.9, 1.1), translate=0.2, fill=0.5, seed=1),
]


@pytest.mark.parametrize("make", GEOMETRIC)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_labels_are_kept(make, dtype):
    x, y = _batch()
    x = x.to(dtype)
    out, y_out = make()(x, y)
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.equal(y_out, y)
    soft = torch.softmax(torch.randn(6, 4), 1)
    assert torch.equal(make()(x, soft)[1], soft)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
       st.booleans(), st.booleans())
def test_flip_twice_is_identity(n, c, h, w, horizontal, vertical):
    if not (horizontal or vertical):
        vertical = True
    x = torch.rand(n, c, h, w)
    flip = RandomFlip(horizontal, vertical, p=1.0)
    once, _ = flip(x, torch.zeros(n, dtype=torch.long))
    twice, _ = flip(once, torch.zeros(n, dtype=torch.long))
    assert torch.equal(twice, x)
    expected = x.flip(-1) if horizontal else x
    expected = expected.flip(-2) if vertical else expected
    assert torch.equal(once, expected)


def test_flip_decides_per_sample_with_rate_p():
    n, p = 10_000, 0.3
    x = torch.arange(2.0).view(1, 1, 1, 2).expand(n, 1, 1, 2).contiguous()  # [0, 1] in each row
    out, _ = RandomFlip(p=p, seed=0)(x, torch.zeros(n, dtype=torch.long))
    flipped = out[:, 0, 0, 0] == 1.0
    assert torch.equal(out[flipped], x.flip(-1)[flipped])
    assert torch.equal(out[~flipped], x[~flipped])
    rate = flipped.float().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n)  # 4 binomial standard deviations


def test_crop_with_zero_padding_is_identity():
    x, y = _batch()
    assert torch.equal(RandomCrop(0, seed=3)(x, y)[0], x)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_crop_offsets_match_a_padded_reference_and_cover_the_range(mode):
    n, pad = 400, 2
    x = torch.rand(n, 1, 6, 5)
    crop = RandomCrop(pad, padding_mode=mode, seed=0)
    out, _ = crop(x, torch.zeros(n, dtype=torch.long))
    padded = F.pad(x, (pad,) * 4, mode=mode)
    # Every output must be one of the (2*pad+1)^2 windows of its padded image.
    windows = padded.unfold(2, 6, 1).unfold(3, 5, 1)  # (N, 1, 5, 5, 6, 5): window row/col offsets
    found = (windows == out[:, :, None, None]).flatten(4).all(-1)[:, 0]  # (N, 5, 5) bool
    assert found.any(dim=(1, 2)).all()
    offsets = found.flatten(1).float().argmax(1)  # (N, 5*5) -> (N,) first matching window
    assert set(offsets.tolist()) == set(range((2 * pad + 1) ** 2))  # all 25 offsets occur


@pytest.mark.parametrize("dy,dx", [(0, 0), (2, -1), (-3, 3), (1, 0), (0, -2)])
def test_shift_equals_roll_with_zero_fill(dy, dx):
    x = torch.rand(2, 3, 7, 8)
    out = shift_images(x, torch.tensor([dy, -dy]), torch.tensor([dx, -dx]), (3, 3))
    assert torch.equal(out[0], roll_zero_fill(x[0], dy, dx))
    assert torch.equal(out[1], roll_zero_fill(x[1], -dy, -dx))


def test_translate_output_is_a_zero_filled_shift_within_range():
    n = 300
    x = torch.rand(n, 1, 8, 8) + 0.5  # no zeros inside the image
    out, _ = RandomTranslate(2, seed=0)(x, torch.zeros(n, dtype=torch.long))
    seen = set()
    for i in range(n):  # the test, not the code, loops: checking against the reference
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out[i], roll_zero_fill(x[i], dy, dx))]
        assert matches, f"sample {i} is not a shift within 2 pixels"
        seen.add(matches[0])
    assert len(seen) == 25


def test_translate_fraction_is_rounded_to_pixels():
    assert RandomTranslate(0.25).max_pixels(28, 12) == (7, 3)
    with pytest.raises(ValueError, match=r"max_shift as a float .* below 1, got 1\.5"):
        RandomTranslate(1.5)


def test_rotation_by_zero_is_identity():
    x, y = _batch(c=3, h=11, w=6)
    out, _ = RandomRotation(0, seed=0)(x, y)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(5, 5), (8, 8)])
def test_rotation_by_90_degrees_matches_rot90_counter_clockwise(size):
    from cnnkit.augment.geometric import affine_matrices
    x = torch.rand(3, 2, *size)
    theta = affine_matrices(torch.full((3,), 90.0), torch.ones(3), torch.zeros(3, 2), size)
    out = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False),
                        align_corners=False)
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_affine_shift_by_whole_pixels_matches_roll():
    from cnnkit.augment.geometric import affine_matrices
    x = torch.rand(1, 1, 6, 10)
    theta = affine_matrices(torch.zeros(1), torch.ones(1), torch.tensor([[3.0, -1.0]]), (6, 10))
    out = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False),
                        align_corners=False)
    torch.testing.assert_close(out[0], roll_zero_fill(x[0], -1, 3), atol=1e-5, rtol=0)


def test_rotation_angles_are_uniform_within_degrees():
    angle, scale, shift = RandomRotation(10, seed=0).sample(10_000, None, torch.device("cpu"))
    assert -10 <= angle.min() < -9.9 and 9.9 < angle.max() <= 10
    assert abs(angle.mean().item()) < 4 * 10 / math.sqrt(3 * 10_000)  # 4 std of the mean
    assert abs(angle.std().item() - 10 / math.sqrt(3)) < 0.1
    assert torch.equal(scale, torch.ones_like(scale)) and not shift.any()


def test_scale_factors_and_shifts_stay_in_range():
    aff = RandomAffine(0, scale=(0.8, 1.25), translate=0.1, p=0.5, seed=0)
    angle, scale, shift = aff.sample(10_000, None, torch.device("cpu"))
    applied = scale != 1
    assert abs(applied.float().mean().item() - 0.5) < 0.02
    assert scale.min() >= 0.8 and scale.max() <= 1.25
    assert shift.abs().max() <= 0.1 and not shift[~applied].any()


def test_zoom_in_enlarges_a_centred_square():
    x = torch.zeros(1, 1, 20, 20)
    x[..., 8:12, 8:12] = 1.0
    out, _ = RandomScale((2.0, 2.0), seed=0)(x, torch.zeros(1, dtype=torch.long))
    assert out[0, 0, 10, 7] > 0.99 and out[0, 0, 10, 4] < 0.01  # the square now spans ~6..14
    assert out.sum().item() == pytest.approx(4 * x.sum().item(), rel=0.1)  # area x scale^2


def test_fill_value_appears_in_uncovered_corners():
    x = torch.zeros(1, 1, 16, 16)
    aff = RandomAffine(0, scale=(0.5, 0.5), fill=0.7, seed=0)
    out, _ = aff(x, torch.zeros(1, dtype=torch.long))
    assert out[0, 0, 0, 0].item() == pytest.approx(0.7)
    assert out[0, 0, 8, 8].item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: RandomFlip(False, False), "horizontal=True or vertical=True"),
    (lambda: RandomFlip(p=1.5), r"p must be in \[0, 1\], got 1\.5"),
    (lambda: RandomCrop(-1), r"padding must be ints >= 0.*-1"),
    (lambda: RandomCrop(2, padding_mode="wrap"), r"padding_mode must be one of .*'wrap'"),
    (lambda: RandomRotation(-5), r"degrees must be >= 0, got -5"),
    (lambda: RandomScale((1.2, 0.8)), r"scale must satisfy 0 < low <= high, got \(1\.2, 0\.8\)"),
    (lambda: RandomAffine(translate=1.0), "translate is a fraction"),
])
def test_bad_arguments_are_rejected_with_clear_messages(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_reflect_padding_larger_than_image_is_explained():
    crop = RandomCrop(4, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"reflect padding \(4, 4\) must be smaller than"):
        crop(torch.rand(1, 1, 3, 3), torch.zeros(1, dtype=torch.long))
