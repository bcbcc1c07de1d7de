"""Choosing the device and the mixed-precision mode, with honest fallbacks.

Mixed precision runs the forward pass under ``torch.autocast``: ``bf16`` where the device
supports it (recent CUDA GPUs, CPU), ``fp16`` on CUDA only (with a gradient scaler to keep small
gradients from underflowing). An unsupported request falls back to fp32 with a warning.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, then MPS, then CPU; other names are checked.

    Raises:
        ValueError: a device that this machine does not have (``"cuda"`` without a GPU).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but PyTorch sees no CUDA GPU here; "
                         "use device='auto' or 'cpu'")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None)
                                       and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} but MPS is not available; use 'auto' or 'cpu'")
    return resolved


@dataclass(frozen=True)
class Precision:
    """The autocast setting actually used: ``dtype`` None means plain fp32."""

    name: str
    dtype: torch.dtype | None
    use_scaler: bool

    def autocast(self, device: torch.device):
        """A context manager: autocast to ``dtype`` on ``device``, or a no-op for fp32."""
        return torch.autocast(device.type, dtype=self.dtype or torch.float32,
                              enabled=self.dtype is not None)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively, so that bf16 autocast is faster than fp32.

    CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later). CPU: the AVX512-BF16 or AMX
    instructions (oneDNN then runs bf16 convolutions and matmuls at about twice the fp32 rate;
    without them bf16 is emulated and slower than fp32). Other devices: False.

    Example:
        >>> native_bf16(torch.device("cpu")) in (True, False)
        True
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Map ``fp32``/``bf16``/``fp16``/``auto`` to an autocast setting the device supports.

    ``auto`` is bf16 where :func:`native_bf16` says the device has it, else fp32 (no warning).

    Raises:
        ValueError: an unknown precision name.

    Example:
        >>> resolve_precision("bf16", torch.device("cpu")).dtype
        torch.bfloat16
    """
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
    if precision == "fp32":
        return Precision("fp32", None, False)
    if precision == "bf16":
        if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
            return Precision("bf16", torch.bfloat16, False)
    elif precision == "fp16":
        if device.type == "cuda":
            return Precision("fp16", torch.float16, True)
    else:
        raise ValueError(f"precision must be 'fp32', 'bf16', 'fp16' or 'auto', got {precision!r}")
    log.warning("precision=%r is not supported on %s; training in fp32", precision, device)
    return Precision("fp32", None, False)


def resolve_channels_last(channels_last: bool | None, precision: Precision,
                          device: torch.device) -> bool:
    """``None`` (auto): channels-last on a CPU, and elsewhere exactly when autocast runs.

    Measured (bench/RESULTS.md, "channels-last in fp32"): a bf16 training step of the tutorial
    CNN takes 6.6 ms with NHWC weights and activations against 10.1 ms NCHW (max-pooling an
    NHWC tensor is ~10x faster); in fp32 the two layouts were equally fast on a Xeon with AMX,
    and on an AMD EPYC with AVX2 only (no native bf16, so ``auto`` trains in fp32) NHWC steps
    took 0.59-0.98x the NCHW time for every zoo and recipe network (``python -m
    bench.layout``; mnist-fast 0.60x: its first conv's forward and the max-pools), so a CPU
    gets it in either precision. CUDA in fp32 is unmeasured here and keeps NCHW.

    Example:
        >>> resolve_channels_last(None, resolve_precision("fp32", torch.device("cpu")),
        ...                       torch.device("cpu"))
        True
    """
    if channels_last is None:
        return device.type == "cpu" or precision.dtype is not None
    return bool(channels_last)


# Optimizers whose ``step`` has a fused kernel (one pass over each parameter instead of one
# per elementwise op) on the CPU and on CUDA.
_FUSABLE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


def use_fused_optimizer(optimizer: torch.optim.Optimizer) -> bool:
    """Switch a freshly built Adam/AdamW/SGD to its fused kernel; return whether it did.

    The fused step computes the same update as the default ``foreach`` one (equal up to float
    rounding) in one pass over memory, about 2–4× faster on a CPU for a large dense layer
    (bench/results/speed.md). Left unchanged: other optimizers, an optimizer that has already
    stepped (its state was made for the other kernel), and parameters that are not floating
    point or live on a device without the fused kernel.

    Example:
        >>> opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
        >>> use_fused_optimizer(opt), opt.param_groups[0]["fused"]
        (True, True)
    """
    if not isinstance(optimizer, _FUSABLE) or optimizer.state:
        return False
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        return False
    for group in (optimizer.defaults, *optimizer.param_groups):
        group["fused"], group["foreach"] = True, None
    return True
