"""Refuse models whose parameters or activations cannot fit in memory, before allocating them."""
from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import ModelTooLargeError, RoundingWarning
from cnnkit.layers.base import Layer

GIB = 1024 ** 3
BYTES_PER_VALUE = 4  # float32
ACTIVATION_FRACTION = 0.5  # batch-1 activations may use at most this share of available memory


def available_memory() -> int:
    """Bytes of memory available now: /proc/meminfo MemAvailable, else free pages (sysconf)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def dry_run(layer: nn.Module, shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """Parameter count and output shape of ``layer`` for ``shape``, built on the meta device.

    The layer itself is not changed: a copy is built with meta tensors (no memory behind them).

    Raises:
        ValueError: the layer does not fit ``shape`` (as its real build would).

    Shape:
        ``shape`` is (C, H, W) or (F,) without the batch; the output likewise.
    """
    probe = copy.deepcopy(layer)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RoundingWarning)  # the real build warns once
        if isinstance(probe, Layer):
            probe.build(tuple(shape))
            out = tuple(probe.compute_output_shape(tuple(shape)))
        else:
            probe = probe.to("meta")
            with torch.no_grad():
                out = tuple(probe(torch.zeros(1, *shape, device="meta")).shape[1:])
    return sum(p.numel() for p in probe.parameters()), out


def check_memory(parameters: int, activations: int, *, where: str) -> None:
    """Raise ``ModelTooLargeError`` when the model cannot be allocated on this machine.

    Args:
        parameters: total parameter count.
        activations: values of every layer's output for a batch of 1.
        where: what the figures belong to (named in the message).

    Raises:
        ModelTooLargeError: parameters alone exceed the available memory, or the batch-1
            activations exceed ``ACTIVATION_FRACTION`` of it.
    """
    available = available_memory()
    param_bytes = parameters * BYTES_PER_VALUE
    act_bytes = activations * BYTES_PER_VALUE
    if param_bytes > available or act_bytes > ACTIVATION_FRACTION * available:
        raise ModelTooLargeError(
            f"{where} is too large to allocate: {parameters:,} parameters "
            f"({param_bytes / GIB:,.1f} GiB float32) and {act_bytes / GIB:,.1f} GiB of activations "
            f"for one image, but only {available / GIB:,.1f} GiB of memory is available; "
            "use fewer filters/units, downsample earlier (stride or pooling), or a smaller input")


def total_values(shape: Sequence[int]) -> int:
    """Number of values in one sample of ``shape``."""
    return math.prod(shape)
