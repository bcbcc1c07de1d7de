"""Scaling out: training images/s with 1 and N processes (DistributedDataParallel, torchrun).

Run from the repository root:  .venv/bin/python -m bench.scaling [--nproc 2] [--images 15360]

The tutorial CNN (conv 32@3×3 + ReLU, 2×2 max pool, fc 256 + ReLU, fc 10; Adam lr 1e-3) trains
on the first ``--images`` MNIST training images with a global batch of 128, in ``1`` and
``--nproc`` processes launched by ``torchrun --standalone``. Each process gets
``cores // processes`` torch threads (CPU, gloo) or one GPU (``--device cuda``, NCCL). Two
contenders per process count:

* ``pytorch DDP``: the plain loop (``DistributedDataParallel``, each rank slicing its share of
  a seeded permutation, batch 128 / N); the reference.
* ``cnnkit Trainer``: ``cnnkit.train.Trainer.train_epoch`` over an ``InMemoryLoader`` with
  ``rank``/``world_size`` (the path ``cnnkit train --nproc N`` takes).

A run times one epoch after a warm-up of 10 steps, between two barriers, on rank 0; the driver
alternates the contenders and reports medians. On a 2-core CPU expect little or no gain: both
processes share the same cores and memory bandwidth, and gloo adds an all-reduce per step.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench._common import alternate, load_mnist, machine_note, median_of, print_table

GLOBAL_BATCH, LR, WARMUP_STEPS = 128, 1e-3, 10


def tutorial_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # (N, 1, 28, 28) -> (N, 32, 13, 13)
        nn.Flatten(),  # (N, 32, 13, 13) -> (N, 5408)
        nn.Linear(5408, 256), nn.ReLU(), nn.Linear(256, 10))


# ---------------------------------------------------------------------------- worker (one rank)
def _run_pytorch(train, ctx, device) -> float:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = tutorial_cnn().to(device)
    ddp = DistributedDataParallel(model) if ctx.enabled else model
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x = train.images.to(device).float().div_(255)  # (N, 1, 28, 28) on the 0-1 scale
    y = train.labels.to(device)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    mine = order[ctx.rank::ctx.world_size].to(device)
    per_rank = GLOBAL_BATCH // ctx.world_size

    def step(b: int) -> None:
        idx = mine[b * per_rank:(b + 1) * per_rank]
        loss = nn.functional.cross_entropy(ddp(x[idx]), y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for b in range(WARMUP_STEPS):
        step(b)
    steps = len(mine) // per_rank
    if ctx.enabled:
        dist.barrier()
    start = time.perf_counter()
    for b in range(steps):
        step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    if ctx.enabled:
        dist.barrier()
    return steps * GLOBAL_BATCH / (time.perf_counter() - start)


def _run_cnnkit(train, ctx, device) -> float:
    from cnnkit.data.loader import InMemoryLoader
    from cnnkit.train import distributed
    from cnnkit.train.config import TrainConfig
    from cnnkit.train.trainer import Trainer

    config = TrainConfig(batch_size=GLOBAL_BATCH, lr=LR, schedule="constant", device=device.type)
    trainer = Trainer(tutorial_cnn(), config, progress=False, log_every=10 ** 9)
    per_rank = distributed.per_rank_batch_size(GLOBAL_BATCH, ctx.world_size)
    loader = InMemoryLoader(train, batch_size=per_rank, drop_last=True, device=device,
                            rank=ctx.rank, world_size=ctx.world_size)
    for _, (x, y) in zip(range(WARMUP_STEPS), loader):
        trainer._train_step(x, y)
    distributed.barrier()
    start = time.perf_counter()
    trainer.train_epoch(loader, 1, 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    distributed.barrier()
    return len(loader) * GLOBAL_BATCH / (time.perf_counter() - start)


def worker(args: argparse.Namespace) -> None:
    from cnnkit.data.dataset import ImageData
    from cnnkit.train import distributed

    ctx = distributed.init_from_env()
    device = distributed.local_device(torch.device(args.device), ctx)
    full, _ = load_mnist()
    train = ImageData(full.images[:args.images], full.labels[:args.images], full.class_names)
    torch.manual_seed(0)
    run = _run_pytorch if args.impl == "pytorch" else _run_cnnkit
    images_per_s = run(train, ctx, device)
    if ctx.is_main:
        Path(args.result).write_text(json.dumps({"images_per_s": images_per_s}))
    distributed.shutdown()


# ---------------------------------------------------------------------------- driver
def launch(impl: str, nproc: int, args: argparse.Namespace) -> dict:
    threads = max(1, (os.cpu_count() or 1) // nproc)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(nproc), "-m", "bench.scaling", "--worker",
                   "--impl", impl, "--images", str(args.images), "--device", args.device,
                   "--result", str(result)]
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes to compare with 1")
    parser.add_argument("--images", type=int, default=15360, help="training images per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=("pytorch", "cnnkit"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(machine_note())
    counts = (1, args.nproc)
    contenders = {f"{impl} x{n}": (lambda repeat, impl=impl, n=n: launch(impl, n, args))
                  for n in counts for impl in ("pytorch", "cnnkit")}
    results = alternate(contenders, args.repeats)
    rows = []
    for impl, label in (("pytorch", "pytorch DDP"), ("cnnkit", "cnnkit Trainer")):
        one = median_of(results[f"{impl} x1"], "images_per_s")
        many = median_of(results[f"{impl} x{args.nproc}"], "images_per_s")
        rows.append([label, f"{one:.0f}", f"{many:.0f}", f"{many / one:.2f}x"])
    print_table(f"Training images/s, tutorial CNN on {args.images} MNIST images, global batch "
                f"{GLOBAL_BATCH}, {args.device} (median of {args.repeats})",
                ["contender", "1 process", f"{args.nproc} processes", "speed-up"], rows)


if __name__ == "__main__":
    main()
