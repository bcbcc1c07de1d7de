"""Helpers of the fault and abuse tests: a code-running pickle, memory and file snapshots."""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import torch


class RunsCode:
    """Unpickling this creates the file ``marker``: it stands for any payload an attacker runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_code_running_pickle(path: Path, marker: Path) -> Path:
    """A real ``torch.save`` file whose unpickling (weights_only=False) would create ``marker``."""
    torch.save({"0.weight": torch.zeros(2), "payload": RunsCode(marker)}, path)
    return path


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder``, relative to it."""
    return {os.path.relpath(os.path.join(d, f), folder)
            for d, _, names in os.walk(folder) for f in names}


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    """Flip one bit of a file in place (offset may be negative: from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int) -> None:
    """Keep only the first ``keep`` bytes of a file."""
    path.write_bytes(path.read_bytes()[:keep])
