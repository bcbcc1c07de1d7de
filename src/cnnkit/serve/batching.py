"""Dynamic batching: concurrent requests share one forward pass.

Each request puts its image on an asyncio queue and awaits a future. One worker task takes the
first waiting image, collects more until it has ``max_batch`` or ``max_wait_ms`` has passed
since the first, runs one forward pass in a thread (so the event loop keeps accepting
requests), and resolves every future with its row of the result. A request that waits longer
than ``timeout_s`` gets :class:`BatchTimeout`; a full queue gets :class:`QueueFull` at once, so
memory stays bounded under any load.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnnkit._checks import check_positive_int

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchConfig:
    """How requests are grouped.

    Args:
        max_batch: most images per forward pass.
        max_wait_ms: longest a first image waits for company before its pass runs (ms).
        timeout_s: longest a request waits for its result (s); then HTTP 504.
        max_queue: most images waiting; beyond it requests are refused with HTTP 503.
    """

    max_batch: int = 32
    max_wait_ms: float = 5.0
    timeout_s: float = 10.0
    max_queue: int = 1024

    def __post_init__(self) -> None:
        check_positive_int(self.max_batch, "max_batch")
        check_positive_int(self.max_queue, "max_queue")
        if not self.max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0 (milliseconds), got {self.max_wait_ms!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 (seconds), got {self.timeout_s!r}")


class BatchTimeout(Exception):
    """A request waited longer than ``timeout_s`` for its prediction."""


class QueueFull(Exception):
    """More than ``max_queue`` images are waiting; the server is overloaded."""


class DynamicBatcher:
    """Group single-image predictions into batched forward passes.

    Args:
        predict: ``(N, C, H, W) uint8 array -> (N, K) float array`` (or any sequence of N
            per-image results, e.g. ``/features``' probabilities and feature maps); runs in a
            worker thread, one batch at a time.
        config: batch size, wait, timeout and queue limits.
        stack: True: ``predict`` gets one stacked array (every image has the same shape);
            False: a list of the images (of any sizes, e.g. a task run's uploads at their own
            size).

    Shape:
        :meth:`submit` takes one (C, H, W) image and returns its (K,) row (its entry of
        ``predict``'s result).

    Example:
        >>> batcher = DynamicBatcher(lambda x: x.reshape(len(x), -1)[:, :2], BatchConfig())
        >>> # inside a running event loop:
        >>> # await batcher.start(); row = await batcher.submit(image); await batcher.stop()
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], config: BatchConfig, *,
                 stack: bool = True):
        self.predict = predict
        self.config = config
        self.stack = stack
        self.batches_run = 0
        self.images_run = 0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    @property
    def pending(self) -> int:
        """Images waiting for a forward pass."""
        return 0 if self._queue is None else self._queue.qsize()

    async def start(self) -> None:
        """Start the worker task in the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.config.max_queue)
        self._worker = asyncio.create_task(self._run(), name="cnnkit-batcher")

    async def stop(self) -> None:
        """Stop the worker; waiting requests fail with ``asyncio.CancelledError``."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.cancel()

    async def submit(self, image: np.ndarray):
        """Queue one (C, H, W) image and wait for its output row (K,).

        Raises:
            QueueFull: ``max_queue`` images are already waiting.
            BatchTimeout: no result within ``timeout_s``.
            RuntimeError: the batcher is not started.
        """
        if self._queue is None or self._worker is None:
            raise RuntimeError("the batcher is not running; call await batcher.start() first")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((image, future))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.config.max_queue} images are already waiting") from None
        try:
            return await asyncio.wait_for(future, self.config.timeout_s)
        except asyncio.TimeoutError:
            raise BatchTimeout(f"no prediction within {self.config.timeout_s} s") from None

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """The first waiting item plus whatever arrives within ``max_wait_ms``."""
        items = [await self._queue.get()]
        deadline = time.monotonic() + self.config.max_wait_ms / 1000.0
        while len(items) < self.config.max_batch:
            remaining = deadline - time.monotonic()
            if not self._queue.empty():
                items.append(self._queue.get_nowait())
            elif remaining <= 0:
                break
            else:
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
        # Requests that timed out while queued are dropped, not computed.
        return [(image, future) for image, future in items if not future.done()]

    async def _run(self) -> None:
        while True:
            items = await self._collect()
            if not items:
                continue
            images = [image for image, _ in items]
            batch = np.stack(images) if self.stack else images  # n x (C, H, W) -> (n, C, H, W)
            try:
                outputs = await asyncio.to_thread(self.predict, batch)
            except Exception as error:  # a failed pass fails its requests, not the server
                logger.exception("forward pass on a batch of %d failed", len(items))
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches_run += 1
            self.images_run += len(items)
            for row, (_, future) in zip(outputs, items):
                if not future.done():
                    future.set_result(row)
