"""The error raised when an exported model cannot be written or does not match PyTorch."""
from __future__ import annotations

from cnnkit.errors import CnnkitError


class ExportError(CnnkitError, RuntimeError):
    """An export failed, or the exported model's outputs differ from PyTorch's.

    The message names the format, the file and (for a mismatch) the largest difference found.
    """
