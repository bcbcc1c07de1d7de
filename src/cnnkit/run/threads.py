"""One PyTorch thread around a prediction that onnxruntime computes.

With the onnxruntime backend, PyTorch only does the small steps around the network (uint8 →
float, normalisation, resize, flips, softmax). When such a step runs on PyTorch's OpenMP
pool, the pool's threads keep spinning on the cores for a while after it ends, just when
onnxruntime's own threads need those cores for the network: on the 2-core CPU of
bench/RESULTS.md a LeNet-5 batch of 256 took 4.5 ms after a two-thread ``x.float() / 255``
and 3.1 ms after the same step on one thread. So :func:`torch_threads_beside` runs those steps
on one thread. The results are the same (the steps do the same arithmetic per element on
one thread as on two); ``ONNX_TORCH_THREADS = None`` turns it off.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: PyTorch intra-op threads while a prediction's network runs in onnxruntime (None: leave
#: PyTorch's setting alone).
ONNX_TORCH_THREADS: int | None = 1


def computes_outside_torch(forward) -> bool:
    """Whether ``forward`` (``LoadedModel.forward``) runs the network outside PyTorch."""
    return bool(getattr(forward, "computes_outside_torch", False))


@contextmanager
def torch_threads_beside(outside: bool) -> Iterator[None]:
    """Limit PyTorch to ``ONNX_TORCH_THREADS`` threads when the network runs ``outside`` it.

    A no-op when ``outside`` is False (a PyTorch forward) or ``ONNX_TORCH_THREADS`` is None.
    PyTorch's thread count is restored afterwards, also when the body raises. The count is
    per calling thread (OpenMP's setting), so a server's other threads keep theirs.

    Example:
        >>> before = torch.get_num_threads()
        >>> with torch_threads_beside(False):
        ...     torch.get_num_threads() == before
        True
    """
    limit = ONNX_TORCH_THREADS
    before = torch.get_num_threads()
    if limit is None or not outside or limit >= before:
        yield
        return
    torch.set_num_threads(limit)
    try:
        yield
    finally:
        torch.set_num_threads(before)
