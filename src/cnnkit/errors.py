"""Exceptions that the CLI maps to exit code 2 (bad usage or input)."""
from __future__ import annotations


class CnnkitError(Exception):
    """Base class of cnnkit's own errors about user input, files and data."""


class DataError(CnnkitError, ValueError):
    """A dataset, file or label that cannot be used; the message names the file and the fix."""


class CheckpointError(CnnkitError, ValueError):
    """A checkpoint or run folder that is missing, corrupt or unsafe to load."""


class TrainingError(CnnkitError, RuntimeError):
    """Training stopped for a reason the user must act on (NaN loss, divergence, out of memory)."""


class ModelTooLargeError(CnnkitError, ValueError):
    """A model whose parameters or activations cannot fit in this machine's memory."""


class RoundingWarning(UserWarning):
    """A layer's output size O = (W − K + 2P)/S + 1 was not an integer and was rounded down."""
