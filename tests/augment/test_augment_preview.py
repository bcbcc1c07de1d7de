"""The picture of augmented samples (what ``cnnkit show augment`` draws)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.augment import augment_grid, parse_augment


def _images(c=3, n=3):
    return torch.randint(0, 256, (n, c, 12, 12), dtype=torch.uint8)


def test_grid_writes_a_png_with_one_row_per_image(tmp_path):
    path = tmp_path / "augment.png"
    images = _images()
    fig = augment_grid(images, parse_augment("flip,crop(2),jitter(0.2)"), n_variants=4,
                       labels=torch.tensor([0, 1, 2]), class_names=["cat", "dog", "ship"],
                       path=path)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > 0 and png.height > 0
    axes = np.array(fig.axes).reshape(3, 5)
    assert axes[0, 0].get_title() == "original" and axes[0, 4].get_title() == "aug 4"
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["cat", "dog", "ship"]
    shown = np.asarray(axes[1, 0].images[0].get_array())
    expected = images[1].permute(1, 2, 0).numpy() / 255  # (C, H, W) -> (H, W, C)
    np.testing.assert_allclose(shown, expected, atol=1e-6)


def test_original_column_shows_the_input_and_seed_fixes_the_picture(tmp_path):
    images = _images(c=1)
    aug = parse_augment("rotate(30),cutout(4)")
    fig = augment_grid(images, aug, n_variants=2, seed=5)
    original = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(original, images[0, 0].numpy() / 255, atol=1e-6)
    pictures = []
    for seed in (5, 5, 6):
        path = tmp_path / f"{seed}-{len(pictures)}.png"
        augment_grid(images.float() / 255, aug, n_variants=2, seed=seed, path=path)
        with Image.open(path) as png:
            pictures.append(np.asarray(png.convert("RGB")))
    assert np.array_equal(pictures[0], pictures[1])
    assert not np.array_equal(pictures[0], pictures[2])


def test_mixup_preview_needs_no_labels(tmp_path):
    fig = augment_grid(_images(), parse_augment("mixup(1)", num_classes=3), n_variants=1,
                       path=tmp_path / "mix.png")
    assert len(fig.axes) == 6


@pytest.mark.parametrize("images,error,match", [
    (torch.zeros(2, 12, 12, dtype=torch.uint8), ValueError, r"\(N, C, H, W\)"),
    (torch.zeros(2, 2, 12, 12, dtype=torch.uint8), ValueError, r"1 or 3 channels"),
    (torch.zeros(2, 3, 12, 12, dtype=torch.int32), TypeError, r"uint8 \(0-255\) or float"),
])
def test_bad_images_are_explained(images, error, match):
    with pytest.raises(error, match=match):
        augment_grid(images, parse_augment("flip"))
