"""1-D/2-D convolution of signals: direct == FFT == numpy/scipy; dice and echo examples."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.inspect.signals import (add_echo, convolve1d, convolve2d, dice_distribution, echo_kernel,
                                    sum_of_dice)

scipy_signal = pytest.importorskip("scipy.signal")


@pytest.mark.parametrize("n,k", [(1, 1), (5, 3), (3, 5), (64, 7), (100, 100)])
def test_convolve1d_direct_fft_numpy_scipy_agree(n, k):
    rng = np.random.default_rng(n * 31 + k)
    a, b = rng.normal(size=n), rng.normal(size=k)
    expected = np.convolve(a, b)
    np.testing.assert_allclose(convolve1d(a, b, "direct"), expected, atol=1e-10)
    np.testing.assert_allclose(convolve1d(a, b, "fft"), expected, atol=1e-10)
    np.testing.assert_allclose(scipy_signal.fftconvolve(a, b), expected, atol=1e-10)


@pytest.mark.parametrize("shape,kshape", [((1, 1), (1, 1)), ((6, 7), (3, 3)), ((5, 9), (4, 2)),
                                          ((3, 3), (5, 5))])
def test_convolve2d_direct_fft_scipy_agree(shape, kshape):
    rng = np.random.default_rng(sum(shape) + sum(kshape))
    a, b = rng.normal(size=shape), rng.normal(size=kshape)
    expected = scipy_signal.convolve2d(a, b, mode="full")
    np.testing.assert_allclose(convolve2d(a, b, "direct"), expected, atol=1e-10)
    np.testing.assert_allclose(convolve2d(a, b, "fft"), expected, atol=1e-10)
    np.testing.assert_allclose(scipy_signal.fftconvolve(a, b), expected, atol=1e-10)


def test_cnn_layers_compute_cross_correlation_with_a_flipped_kernel():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=4)
    # conv1d with the kernel flipped and full padding is the mathematical convolution.
    layer = F.conv1d(torch.tensor(a)[None, None], torch.tensor(b[::-1].copy())[None, None], padding=3)
    np.testing.assert_allclose(layer[0, 0].numpy(), convolve1d(a, b), atol=1e-10)


def test_sum_of_two_dice():
    values, probs = sum_of_dice(2, 6)
    assert values.tolist() == list(range(2, 13))
    assert probs.sum() == pytest.approx(1.0)
    assert values[probs.argmax()] == 7
    assert probs[values == 7][0] == pytest.approx(6 / 36)
    assert probs[values == 2][0] == pytest.approx(1 / 36)
    np.testing.assert_allclose(sum_of_dice(2, 6, method="fft")[1], probs, atol=1e-12)
    three_values, three = sum_of_dice(3, 6)
    assert three.sum() == pytest.approx(1.0) and three[three_values == 10][0] == pytest.approx(27 / 216)
    assert dice_distribution(4).tolist() == [0.25] * 4


def test_echo():
    assert echo_kernel(3, 0.5, 2).tolist() == [1, 0, 0, 0.5, 0, 0, 0.25]
    click = np.zeros(5)
    click[0] = 2.0
    echoed = add_echo(click, delay=2, decay=0.5, n_echoes=2)
    assert echoed.tolist() == [2, 0, 1, 0, 0.5, 0, 0, 0, 0]
    np.testing.assert_allclose(add_echo(click, 2, method="fft"), add_echo(click, 2), atol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match=r"method must be one of \('direct', 'fft'\), got 'fast'"):
        convolve1d([1], [1], method="fast")
    with pytest.raises(ValueError, match=r"a must be a non-empty 1-D array"):
        convolve1d([], [1])
    with pytest.raises(ValueError, match=r"b must be a non-empty 2-D array"):
        convolve2d(np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        echo_kernel(2, decay=1.5)
