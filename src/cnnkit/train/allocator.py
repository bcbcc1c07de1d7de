"""Keep freed tensor memory in the process instead of handing it back to the OS every step.

A CPU training step allocates and frees the same large buffers (activations, gradients, the
optimizer's temporaries: megabytes each) again and again. glibc's ``malloc`` serves blocks
above its *mmap threshold* with fresh ``mmap`` calls and returns them with ``munmap`` when they
are freed, and it trims free memory at the top of the heap above its *trim threshold*. A loop
that hits that pattern touches brand-new pages every step, and the kernel must fault in and
zero every one of them. Measured on a quiet machine (bench/RESULTS.md, benchmark 1): a plain
PyTorch bf16 loop of the tutorial CNN took 1.4 million minor page faults and 16 ms per step,
and 88 thousand faults and 7 ms per step once freed blocks stay in the heap. cnnkit's own
``fit`` and ``cnnkit train`` loops did not fall into the pattern in the cases measured (the same
fault count and time with and without the tuning), so this is insurance, not their speed-up;
it costs nothing measurable. Intel's PyTorch CPU tuning guide gets the same by preloading
jemalloc or tcmalloc; raising glibc's two thresholds with ``mallopt`` gets it without a preload
or a new dependency.

The setting is process-wide and stays after training (glibc has no way to read it back), so it
is a switch: ``TrainConfig(tune_allocator=False)`` / ``--no-tune-allocator`` leaves malloc
alone. Peak memory barely changes (the same buffers are reused rather than re-mapped); memory
freed after training may stay in the process up to the trim threshold.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heap (reused) instead of a fresh mmap.
MMAP_THRESHOLD = 256 << 20
#: Free memory at the top of the heap is returned to the OS only above this much.
TRIM_THRESHOLD = 512 << 20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (Linux with glibc only).

    Returns:
        True when the thresholds are set (now or by an earlier call), False where there is
        nothing to tune (macOS, Windows, musl) or glibc refused the values; the reason is
        logged at debug level. Never raises.

    Example:
        >>> isinstance(keep_freed_memory(), bool)
        True
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        log.debug("allocator tuning skipped: %s is not Linux", sys.platform)
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only: musl lacks it
    except (OSError, AttributeError) as exc:
        log.debug("allocator tuning skipped: no glibc mallopt (%s)", exc)
        return False
    gnu_get_libc_version.restype = ctypes.c_char_p
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and \
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        log.debug("allocator tuning skipped: glibc %s refused the thresholds",
                  gnu_get_libc_version().decode())
        return False
    log.debug("glibc %s: mmap threshold %d MiB, trim threshold %d MiB",
              gnu_get_libc_version().decode(), MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20)
    _applied = True
    return True
