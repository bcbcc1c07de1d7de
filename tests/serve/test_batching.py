"""Dynamic batching: concurrent requests share forward passes and get their own rows back."""
import asyncio
import threading

import numpy as np
import pytest
import torch

from cnnkit.serve.batching import BatchConfig, BatchTimeout, DynamicBatcher, QueueFull


class CountingModel:
    """A real conv net as a (N, 1, 8, 8) uint8 -> (N, 3) predict function, counting its calls."""

    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                                       torch.nn.Linear(72, 3)).eval()
        self.batch_sizes = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        with torch.inference_mode():
            return self.net(torch.from_numpy(batch).float() / 255).numpy()


def _images(n):
    return np.random.default_rng(0).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)


async def _with_batcher(predict, config, body):
    batcher = DynamicBatcher(predict, config)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_are_batched_and_match_unbatched():
    model = CountingModel()
    images = _images(20)

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(image) for image in images))

    rows = asyncio.run(_with_batcher(model, BatchConfig(max_batch=8, max_wait_ms=50), body))
    assert sum(model.batch_sizes) == 20 and len(model.batch_sizes) < 20
    assert max(model.batch_sizes) <= 8
    expected = CountingModel()(images)  # one unbatched-by-the-server pass over all 20
    for image, row, want in zip(images, rows, expected):
        np.testing.assert_allclose(row, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(row, CountingModel()(image[None])[0], rtol=1e-5, atol=1e-6)


def test_a_slow_pass_times_requests_out_and_the_batcher_recovers():
    release = threading.Event()
    model = CountingModel()

    def blocked(batch):
        release.wait(timeout=10)  # held until the test releases it: no sleeps
        return model(batch)

    async def body(batcher):
        with pytest.raises(BatchTimeout, match="no prediction within 0.05 s"):
            await batcher.submit(_images(1)[0])
        release.set()
        return await batcher.submit(_images(1)[0])

    config = BatchConfig(max_wait_ms=0, timeout_s=0.05)
    row = asyncio.run(_with_batcher(blocked, config, body))
    assert row.shape == (3,)


def test_a_full_queue_refuses_at_once():
    release = threading.Event()

    def blocked(batch):
        release.wait(timeout=10)
        return np.zeros((len(batch), 3), np.float32)

    async def body(batcher):
        first = asyncio.ensure_future(batcher.submit(_images(1)[0]))
        await asyncio.sleep(0)  # let the worker take the first image (a yield, not a delay)
        while batcher.pending:
            await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(batcher.submit(image)) for image in _images(2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit(_images(1)[0])
        release.set()
        return await asyncio.gather(first, *waiting)

    rows = asyncio.run(_with_batcher(blocked, BatchConfig(max_wait_ms=0, max_queue=2), body))
    assert len(rows) == 3


def test_a_failing_pass_fails_its_requests_only():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.ones((len(batch), 3), np.float32)

    async def body(batcher):
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(_images(1)[0])
        return await batcher.submit(_images(1)[0])

    row = asyncio.run(_with_batcher(flaky, BatchConfig(max_wait_ms=0), body))
    np.testing.assert_array_equal(row, np.ones(3))


def test_submit_before_start_and_bad_config():
    batcher = DynamicBatcher(CountingModel(), BatchConfig())
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.submit(_images(1)[0]))
    with pytest.raises(ValueError, match="max_wait_ms must be >= 0"):
        BatchConfig(max_wait_ms=-1)
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        BatchConfig(timeout_s=0)
    with pytest.raises(ValueError, match="max_batch"):
        BatchConfig(max_batch=0)
