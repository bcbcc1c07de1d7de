"""Normalization: statistics against NumPy float64, the transform, its inverse and errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnkit.data.normalization import Normalization


def _images(n=37, c=3, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_fit_matches_numpy_float64_for_any_chunk(chunk):
    arr = _images()
    norm = Normalization.fit(torch.from_numpy(arr), chunk=chunk)
    scaled = arr.astype(np.float64) / 255.0
    np.testing.assert_allclose(norm.mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(norm.std, scaled.std(axis=(0, 2, 3)), rtol=1e-12)


def test_fit_of_a_constant_channel_only_centres_it():
    images = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    images[:, 1] = torch.arange(4, dtype=torch.uint8).view(4, 1, 1) * 50
    norm = Normalization.fit(images)
    assert norm.mean[0] == 0.0 and norm.std[0] == 1.0
    assert norm.std[1] > 0


def test_fit_batches_equals_fit():
    images = torch.from_numpy(_images(n=20))
    assert Normalization.fit_batches([images[:7], images[7:]]) == Normalization.fit(images)


def test_apply_uint8_matches_formula_and_makes_train_set_standard():
    arr = _images(n=64)
    norm = Normalization.fit(torch.from_numpy(arr))
    out = norm.apply(torch.from_numpy(arr))
    assert out.dtype == torch.float32 and out.shape == arr.shape
    expected = (arr / 255.0 - np.array(norm.mean)[:, None, None]) / np.array(norm.std)[:, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.double().mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.double().std(dim=(0, 2, 3), unbiased=False).numpy(), 1.0, atol=1e-5)


def test_apply_float_input_is_taken_on_the_0_1_scale_and_inverse_undoes_it():
    norm = Normalization(mean=(0.5, 0.25), std=(0.5, 0.125))
    x = torch.rand(3, 2, 4, 4)
    y = norm.apply(x)
    torch.testing.assert_close(y[:, 1], (x[:, 1] - 0.25) / 0.125)
    torch.testing.assert_close(norm.inverse(y), x)


def test_apply_single_image_chw_and_identity():
    img = torch.tensor([[[0, 51, 255]]], dtype=torch.uint8)  # (1, 1, 3)
    out = Normalization.identity(1).apply(img)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.2, 1.0]]]))


def test_dict_round_trip_through_json():
    norm = Normalization(mean=(0.1307,), std=(0.3081,))
    assert Normalization.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm


def test_numpy_scalars_are_accepted_and_stored_as_floats():
    norm = Normalization(mean=np.array([0.5], dtype=np.float32), std=[np.float32(0.5)])
    assert type(norm.mean[0]) is float and norm.mean == (0.5,)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mean": (0.5,), "std": (0.0,)}, ValueError, r"std must be > 0 for every channel, got std=\(0\.0,\)"),
    ({"mean": (0.5, 0.5), "std": (0.2,)}, ValueError, r"one value per channel each.*2 values.*1 values"),
    ({"mean": (), "std": ()}, ValueError, "at least one value"),
    ({"mean": "0.5", "std": (1.0,)}, TypeError, "mean must be a sequence of floats"),
    ({"mean": (float("nan"),), "std": (1.0,)}, ValueError, "finite"),
])
def test_bad_statistics_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        Normalization(**kwargs)


def test_channel_mismatch_names_both_counts():
    norm = Normalization(mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*got shape \(2, 3, 4, 4\)"):
        norm.apply(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


def test_fit_rejects_float_images_and_empty_sets():
    with pytest.raises(TypeError, match="uint8 tensor"):
        Normalization.fit(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="empty image set"):
        Normalization.fit(torch.zeros(0, 1, 3, 3, dtype=torch.uint8))


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown: \['scale'\]"):
        Normalization.from_dict({"mean": [0.5], "std": [0.5], "scale": 1})


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("stats", [((0.1307,), (0.3081,)), ((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
def test_apply_numpy_is_apply_bit_for_bit(dtype, stats):
    norm = Normalization(*stats)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, len(stats[0]), 7, 9)).astype(np.uint8)
    x = pixels if dtype == np.uint8 else (pixels / 255.0).astype(np.float32)
    out = norm.apply_numpy(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.array_equal(out, norm.apply(torch.from_numpy(x)).numpy())  # bit for bit
    assert np.array_equal(norm.apply_numpy(x[0]), out[0])  # one (C, H, W) image
    assert not np.shares_memory(out, x)


def test_apply_numpy_names_the_channel_mismatch():
    with pytest.raises(ValueError, match=r"3 channel\(s\).*\(2, 1, 4, 4\)"):
        Normalization((0.5,) * 3, (0.2,) * 3).apply_numpy(np.zeros((2, 1, 4, 4), np.uint8))
