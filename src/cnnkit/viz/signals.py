"""Pictures of 1-D convolution: the two inputs and their convolution, and the classic examples."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from cnnkit.inspect.signals import add_echo, convolve1d, dice_distribution, echo_kernel, sum_of_dice
from cnnkit.viz._figure import new_figure, save_figure, to_numpy


def plot_convolution(a, b, *, labels=("a", "b"), title: str = "Convolution",
                     path: str | os.PathLike | None = None) -> Figure:
    """Three stem plots: ``a``, ``b`` and ``a * b`` (full convolution).

    Example:
        >>> fig = plot_convolution([1, 2, 3], [1, 1])
    """
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    result = convolve1d(a, b)
    fig = new_figure(12.0, 3.4)
    panels = ((labels[0], a), (labels[1], b), (f"{labels[0]} * {labels[1]}", result))
    for ax, (label, values) in zip(fig.subplots(1, 3), panels):
        ax.stem(np.arange(values.size), values)
        ax.set_title(label)
        ax.set_xlabel("index n")
        ax.set_ylabel("value")
    fig.suptitle(f"{title}: (a * b)[n] = sum_k a[k] b[n - k]")
    return save_figure(fig, path)


def plot_signal_examples(*, path: str | os.PathLike | None = None) -> Figure:
    """The "Understanding Convolutions" examples: sum of two dice, and a signal with an echo.

    Example:
        >>> fig = plot_signal_examples()
    """
    fig = new_figure(12.0, 7.0)
    (die_ax, sum_ax), (signal_ax, echo_ax) = fig.subplots(2, 2)
    die_ax.bar(np.arange(1, 7), dice_distribution(6))
    die_ax.set_title("one fair die: P(face)")
    die_ax.set_xlabel("face")
    die_ax.set_ylabel("probability")
    values, probs = sum_of_dice(2, 6)
    sum_ax.bar(values, probs)
    sum_ax.set_title("sum of two dice = die * die (peak at 7)")
    sum_ax.set_xlabel("sum")
    sum_ax.set_ylabel("probability")
    t = np.arange(60)
    signal = np.where(t < 8, np.sin(np.pi * t / 8), 0.0)
    kernel = echo_kernel(delay=15, decay=0.5, n_echoes=3)
    signal_ax.plot(t, signal, label="signal")
    signal_ax.stem(np.arange(kernel.size), kernel, linefmt="C1-", markerfmt="C1o", label="echo kernel")
    signal_ax.set_title("a short sound and an echo kernel")
    signal_ax.set_xlabel("time step")
    signal_ax.set_ylabel("amplitude")
    signal_ax.legend()
    echoed = add_echo(signal, delay=15, decay=0.5, n_echoes=3)
    echo_ax.plot(np.arange(echoed.size), echoed)
    echo_ax.set_title("signal * echo kernel: the sound with its echoes")
    echo_ax.set_xlabel("time step")
    echo_ax.set_ylabel("amplitude")
    fig.suptitle("1-D convolution of signals")
    return save_figure(fig, path)
