"""1-D and 2-D convolution of signals, the way "Understanding Convolutions" (C. Olah) frames it.

The convolution of ``a`` and ``b`` is ``(a * b)[n] = sum_k a[k] b[n - k]``: every way of
splitting ``n`` into two parts, weighted. Dropping a ball twice, the distance distribution of the
total is the convolution of the two single-drop distributions; the sum of two dice is the
convolution of two uniform distributions; a sound plus its echoes is the sound convolved with
an echo kernel. Two ways to compute it are given and checked against each other: the direct sum
(O(N*K)) and the FFT route (convolution becomes multiplication of the Fourier transforms).

Unlike CNN layers (cross-correlation), these functions flip ``b``, as mathematics does.
"""
from __future__ import annotations

import numpy as np

from cnnkit._checks import check_positive_int

_METHODS = ("direct", "fft")


def _as_signal(value, ndim: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim or array.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
    return array


def _check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


def convolve1d(a, b, method: str = "direct") -> np.ndarray:
    """Full 1-D convolution ``(a * b)[n] = sum_k a[k] b[n - k]``.

    Args:
        a, b: 1-D sequences of numbers.
        method: ``"direct"`` (shifted, weighted copies of ``a`` added up) or ``"fft"``.

    Shape:
        (N,), (K,) -> (N + K - 1,)

    Raises:
        ValueError: empty or non-1-D input, or an unknown method.

    Example:
        >>> convolve1d([1, 1], [1, 2, 3])
        array([1., 3., 5., 3.])
    """
    a, b = _as_signal(a, 1, "a"), _as_signal(b, 1, "b")
    if _check_method(method) == "fft":
        size = a.size + b.size - 1
        return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)
    out = np.zeros(a.size + b.size - 1)
    for k, weight in enumerate(b):  # b[k] contributes a copy of a shifted right by k
        out[k:k + a.size] += weight * a
    return out


def convolve2d(a, b, method: str = "direct") -> np.ndarray:
    """Full 2-D convolution ``(a * b)[m, n] = sum_{i,j} a[i, j] b[m - i, n - j]``.

    Shape:
        (H, W), (kh, kw) -> (H + kh - 1, W + kw - 1)

    Raises:
        ValueError: empty or non-2-D input, or an unknown method.

    Example:
        >>> convolve2d(np.ones((2, 2)), np.ones((2, 2))).tolist()
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    a, b = _as_signal(a, 2, "a"), _as_signal(b, 2, "b")
    shape = (a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1)
    if _check_method(method) == "fft":
        return np.fft.irfft2(np.fft.rfft2(a, shape) * np.fft.rfft2(b, shape), shape)
    out = np.zeros(shape)
    for (i, j), weight in np.ndenumerate(b):
        out[i:i + a.shape[0], j:j + a.shape[1]] += weight * a
    return out


def dice_distribution(sides: int = 6) -> np.ndarray:
    """Probability of each face of a fair die: ``sides`` values of ``1/sides`` (faces 1..sides)."""
    sides = check_positive_int(sides, "sides")
    return np.full(sides, 1.0 / sides)


def sum_of_dice(n_dice: int = 2, sides: int = 6, method: str = "direct") -> tuple[np.ndarray, np.ndarray]:
    """Distribution of the sum of ``n_dice`` fair dice, by repeated convolution.

    Returns:
        (values, probabilities): values ``n_dice .. n_dice*sides`` and their probabilities.

    Example:
        >>> values, probs = sum_of_dice(2)
        >>> int(values[probs.argmax()])
        7
    """
    n_dice = check_positive_int(n_dice, "n_dice")
    die = dice_distribution(sides)
    probs = die
    for _ in range(n_dice - 1):
        probs = convolve1d(probs, die, method=method)
    return np.arange(n_dice, n_dice * sides + 1), probs


def echo_kernel(delay: int, decay: float = 0.5, n_echoes: int = 3) -> np.ndarray:
    """Impulse response of a sound with echoes: 1 at t=0, then ``decay**k`` at t = k*delay.

    Example:
        >>> echo_kernel(2, 0.5, 2).tolist()
        [1.0, 0.0, 0.5, 0.0, 0.25]
    """
    delay = check_positive_int(delay, "delay")
    n_echoes = check_positive_int(n_echoes, "n_echoes")
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1) so each echo is quieter, got {decay!r}")
    kernel = np.zeros(delay * n_echoes + 1)
    kernel[::delay] = decay ** np.arange(n_echoes + 1)
    return kernel


def add_echo(signal, delay: int, decay: float = 0.5, n_echoes: int = 3, method: str = "direct") -> np.ndarray:
    """The signal plus its echoes: ``signal * echo_kernel(delay, decay, n_echoes)``.

    Shape:
        (N,) -> (N + delay*n_echoes,)
    """
    return convolve1d(signal, echo_kernel(delay, decay, n_echoes), method=method)
