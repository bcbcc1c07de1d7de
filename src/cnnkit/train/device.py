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


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Map ``fp32``/``bf16``/``fp16`` to an autocast setting the device supports.

    Raises:
        ValueError: an unknown precision name.

    Example:
        >>> resolve_precision("bf16", torch.device("cpu")).dtype
        torch.bfloat16
    """
    if precision == "fp32":
        return Precision("fp32", None, False)
    if precision == "bf16":
        if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
            return Precision("bf16", torch.bfloat16, False)
    elif precision == "fp16":
        if device.type == "cuda":
            return Precision("fp16", torch.float16, True)
    else:
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', got {precision!r}")
    log.warning("precision=%r is not supported on %s; training in fp32", precision, device)
    return Precision("fp32", None, False)
