"""Atomic file writes: an alias of :mod:`cnnkit.run.atomic`, where the code lives.

Kept so that ``from cnnkit.train.atomic import sha256_file`` keeps working.
"""
from cnnkit.run.atomic import (atomic_path, atomic_write_bytes, atomic_write_text,
                               atomic_write_with, sha256_file)

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_with",
           "sha256_file"]
