"""In-process checks of the distributed helpers: sharding laws, accumulation, the CLI relaunch."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.cli import build_parser
from cnnkit.cli.train import _torchrun_argv
from cnnkit.data.dataset import ImageData
from cnnkit.data.loader import InMemoryLoader
from cnnkit.train import distributed
from cnnkit.train.batches import TensorBatches
from cnnkit.train.config import TrainConfig
from cnnkit.train.trainer import Trainer


def _indexed_images(n: int) -> ImageData:
    """n <= 256 one-pixel images whose value is their own index."""
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1)  # (N,) -> (N, 1, 1, 1)
    return ImageData(images, torch.zeros(n, dtype=torch.long), ["only"])


def _indices(x: torch.Tensor) -> list[int]:
    return (x.flatten() * 255).round().long().tolist()  # (B, 1, 1, 1) -> (B,)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), world_size=st.integers(2, 4), per_rank=st.integers(1, 9),
       epoch=st.integers(0, 3))
def test_rank_batches_at_each_step_make_up_the_one_process_batch(n, world_size, per_rank, epoch):
    data, batch = _indexed_images(n), per_rank * world_size
    single = InMemoryLoader(data, batch_size=batch, seed=7)
    ranks = [InMemoryLoader(data, batch_size=distributed.per_rank_batch_size(batch, world_size),
                            seed=7, rank=r, world_size=world_size) for r in range(world_size)]
    for loader in (single, *ranks):
        loader.set_epoch(epoch)
    assert all(len(r) == len(single) for r in ranks)
    for t, ((x, _), rank_batches) in enumerate(zip(single, zip(*ranks), strict=True)):
        union = sorted(i for xr, _ in rank_batches for i in _indices(xr))
        expected = sorted(_indices(x))
        if t < len(single) - 1:
            assert union == expected
        else:  # the last step is padded with the epoch's first indices (< world_size of them)
            assert set(expected) <= set(union) and len(union) - len(expected) < world_size


@given(n=st.integers(0, 50), world_size=st.integers(1, 5))
def test_evaluation_shards_hold_every_image_exactly_once(n, world_size):
    data = _indexed_images(n)
    shards = [distributed.shard_data(data, distributed.DistributedContext(r, r, world_size))
              for r in range(world_size)]
    seen = sorted(int(v) for s in shards for v in s.images.flatten())
    assert seen == list(range(n))


def test_batch_size_must_split_evenly_over_the_processes():
    assert distributed.per_rank_batch_size(96, 3) == 32
    with pytest.raises(ValueError, match=r"batch_size=100 must be a multiple of the number of "
                                         r"processes \(3\).*use batch_size=99 or 102"):
        distributed.per_rank_batch_size(100, 3)


def test_env_context_reads_torchrun_variables_and_rejects_bad_ones(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ctx = distributed.env_context()
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.enabled, ctx.is_main) == (
        1, 1, 2, True, False)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match=r"RANK=2 must lie in \[0, WORLD_SIZE=2\)"):
        distributed.env_context()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        distributed.env_context()


def test_one_process_needs_no_group_and_changes_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.init_from_env() == distributed.DistributedContext()
    model = nn.Linear(2, 2)
    assert distributed.wrap_model(model, distributed.current(), sync_bn=True) is model
    with pytest.raises(ValueError, match="timeout_s must be > 0 seconds, got 0"):
        distributed.init_from_env(timeout_s=0)


def _trained_weights(accumulate_steps: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(50, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.arange(50) % 3
    config = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.1, schedule="constant",
                         precision="fp32",
                         device="cpu", accumulate_steps=accumulate_steps)
    trainer = Trainer(model, config, progress=False)
    trainer.fit(TensorBatches(x, y, batch_size=16, shuffle=True))
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_gradient_accumulation_gives_the_weights_of_whole_batches():
    # 50 images in batches of 16: the last batch of 2 splits into micro-batches of 1, 1, 0.
    whole = _trained_weights(1)
    for steps in (3, 16):
        for key, value in _trained_weights(steps).items():
            torch.testing.assert_close(value, whole[key], atol=1e-6, rtol=1e-5)


def test_accumulate_steps_is_validated():
    with pytest.raises(ValueError, match="accumulate_steps"):
        TrainConfig(accumulate_steps=0)


def test_nproc_relaunch_repeats_the_command_line_with_a_shared_run_folder():
    parser = build_parser()
    argv = ["--verbose", "train", "--nproc", "2", "--epochs", "3", "--lr", "0.01",
            "--no-channels-last", "--sync-bn", "--no-progress"]
    args = parser.parse_args(argv)
    child = _torchrun_argv(args, "runs/run-x")
    again = parser.parse_args(child)
    assert again.verbose and again.no_progress and again.nproc == 1
    assert (again.epochs, again.lr, again.channels_last, again.sync_bn, again.out) == (
        3, 0.01, False, True, "runs/run-x")
    assert distributed.torchrun_command(2, ["cnnkit", *child])[1:6] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
