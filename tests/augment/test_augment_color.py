"""Colour jitter and grayscale against per-image references and the requested factor ranges."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from cnnkit.augment import ColorJitter, RandomGrayscale
from cnnkit.augment.color import hsv_to_rgb, rgb_to_gray, rgb_to_hsv


def test_hsv_conversion_matches_colorsys_and_round_trips():
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    x[0, :, 0, 0] = 0.5  # a gray pixel (no hue)
    hsv = rgb_to_hsv(x)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).numpy()  # (N, 3, H, W) -> (N*H*W, 3)
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
    got = hsv.permute(0, 2, 3, 1).reshape(-1, 3).numpy()  # (N, 3, H, W) -> (N*H*W, 3)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    torch.testing.assert_close(hsv_to_rgb(hsv), x)


def test_zero_jitter_is_identity_and_shapes_are_kept():
    x = torch.rand(4, 3, 6, 6)
    y = torch.arange(4)
    out, y_out = ColorJitter(seed=0)(x, y)
    assert torch.equal(out, x) and torch.equal(y_out, y)
    out, _ = ColorJitter(0.3, 0.3, 0.3, 0.1, seed=0)(x.double(), y)
    assert out.shape == x.shape and out.dtype == torch.float64
    assert out.min() >= 0 and out.max() <= 1


def test_brightness_scales_each_image_by_its_factor_in_range():
    n = 2000
    x = torch.full((n, 3, 2, 2), 0.5)
    jitter = ColorJitter(brightness=0.4, seed=0)
    out, _ = jitter(x, torch.zeros(n, dtype=torch.long))
    factors = out[:, 0, 0, 0] / 0.5
    assert torch.allclose(out, factors.view(n, 1, 1, 1) * 0.5)  # one factor per image
    assert factors.min() >= 0.6 - 1e-6 and factors.max() <= 1.4 + 1e-6
    assert factors.min() < 0.62 and factors.max() > 1.38
    assert abs(factors.mean().item() - 1.0) < 0.02


def test_contrast_keeps_the_mean_and_scales_deviations():
    x = torch.rand(50, 1, 8, 8) * 0.5 + 0.25
    out, _ = ColorJitter(contrast=0.5, seed=1)(x, torch.zeros(50, dtype=torch.long))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    # (N, 1, H, W) -> (N, H*W) -> (N,): how much each image's deviations were scaled
    factor = (out - mean).flatten(1).norm(dim=1) / (x - mean).flatten(1).norm(dim=1)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3), keepdim=True), mean)  # nothing clipped
    assert factor.min() >= 0.5 - 1e-5 and factor.max() <= 1.5 + 1e-5 and factor.std() > 0.1


def test_saturation_zero_gives_gray_and_hue_shift_moves_hue():
    x = torch.rand(8, 3, 4, 4)
    gray, _ = ColorJitter(saturation=(0.0, 0.0), seed=0)(x, torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(gray, rgb_to_gray(x).expand_as(x))
    red = torch.zeros(2000, 3, 1, 1)
    red[:, 0] = 1.0
    out, _ = ColorJitter(hue=0.1, seed=0)(red, torch.zeros(2000, dtype=torch.long))
    hue = rgb_to_hsv(out)[:, 0, 0, 0]
    shift = torch.where(hue > 0.5, hue - 1, hue)  # red has hue 0; shifts wrap around 1
    assert shift.abs().max() <= 0.1 + 1e-5 and shift.min() < -0.09 and shift.max() > 0.09


def test_one_channel_images_skip_saturation_and_hue():
    x = torch.rand(4, 1, 5, 5)
    out, _ = ColorJitter(0, 0, saturation=0.5, hue=0.2, seed=0)(x, torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, x)


def test_grayscale_rate_and_values():
    n, p = 10_000, 0.2
    x = torch.rand(n, 3, 1, 2)
    out, _ = RandomGrayscale(p, seed=0)(x, torch.zeros(n, dtype=torch.long))
    turned = (out != x).flatten(1).any(1)  # (N, 3*1*2) -> (N,)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    expected = (x * weights).sum(1, keepdim=True).expand_as(x)
    torch.testing.assert_close(out[turned], expected[turned])
    assert abs(turned.float().mean().item() - p) < 4 * (p * (1 - p) / n) ** 0.5


@pytest.mark.parametrize("make,error,match", [
    (lambda: ColorJitter(brightness=-0.1), ValueError, r"brightness must be >= 0.*-0\.1"),
    (lambda: ColorJitter(hue=0.7), ValueError, r"hue must be in \[0, 0\.5\].*0\.7"),
    (lambda: ColorJitter(contrast="a"), TypeError, r"contrast must be a number"),
])
def test_bad_jitter_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_two_channel_images_are_rejected():
    with pytest.raises(ValueError, match=r"1-channel .* or 3-channel .* got 2 channels"):
        ColorJitter(0.2)(torch.rand(2, 2, 4, 4), torch.zeros(2, dtype=torch.long))


def test_normalised_batches_are_rejected_by_jitter():
    x = (torch.rand(2, 3, 4, 4) - 0.5) / 0.25  # what (x - mean) / std looks like
    with pytest.raises(ValueError, match=r"0-1 scale, got values from .*before mean/std "
                                         r"normalisation"):
        ColorJitter(0.2)(x, torch.zeros(2, dtype=torch.long))
