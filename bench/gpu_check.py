"""GPU check: the CUDA paths of cnnkit in one run of at most 8 minutes (issue #19, item 6).

Run from the repository root on a machine with a CUDA GPU:
    .venv/bin/python -m bench.gpu_check            # every section; prints one table
    .venv/bin/python -m bench.gpu_check --cpu-smoke  # every code path on the CPU, tiny sizes

Sections (each in a fresh Python process with its own timeout; a failure becomes a row):

1. ``pytest -m cuda``: the test suite's CUDA tests (they skip without a GPU).
2. ``mnist-fast``: ``cnnkit train --recipe mnist-fast`` (bench.time_to_99's runner, which uses
   the GPU when there is one) over 3 seeds. Anchor: 99 % in 0.76 s of training on a GTX 1660 Ti
   (tuomaso/train-mnist-fast); the wall time here includes starting Python and torch.
3. ``cifar10-fast`` training images/s on generated CIFAR-shaped data (50000 random uint8
   3×32×32 images): the recipe through cnnkit's ``Trainer`` + ``InMemoryLoader`` against the
   airbench94 network (cnnkit's ``airbench`` zoo model) in a bare airbench-style loop (Nesterov
   SGD, label smoothing 0.2, random flip, channels-last), same batch (1024), in bf16 autocast
   and in fp16 autocast + ``torch.amp.GradScaler``.
4. ``torch.compile``: the bare loop in bf16, compiled against eager.
5. DDP: the bare loop in bf16 inside ``DistributedDataParallel`` in a one-process NCCL group
   (``cnnkit.train.distributed.wrap_model`` returns the bare model for one process, so the group
   and the wrapper are made here the way torchrun + wrap_model make them for N processes).

Without CUDA (and without ``--cpu-smoke``) it prints ``no CUDA device: GPU sections skipped`` and
exits 0. ``--cpu-smoke`` runs the same code on the CPU with a few tiny steps (gloo instead of
NCCL, the ``eager`` compile backend) so the test suite can check the script itself
(tests/bench_gpu/test_gpu_check.py); its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bench._common import REPO, SHARED_DATA, machine_note, print_table, run_folders

MNIST_ANCHOR_S = 0.76  # tuomaso/train-mnist-fast: 99 % in 0.76 s on a GTX 1660 Ti


@dataclass(frozen=True)
class Sizes:
    """How much work each section does.

    Args:
        images: generated CIFAR-shaped training images.
        batch_size: images per step (the cifar10-fast recipe's 1024 on a GPU).
        steps: timed steps of the bare loop (after ``warmup`` untimed ones).
        warmup: untimed steps first (cuDNN autotuning, compilation).
        width: airbench width multiplier (1.0 = 64/256/256).
        seeds: mnist-fast seeds.
    """

    images: int
    batch_size: int
    steps: int
    warmup: int
    width: float
    seeds: int


GPU_SIZES = Sizes(images=50_000, batch_size=1024, steps=30, warmup=5, width=1.0, seeds=3)
SMOKE_SIZES = Sizes(images=16, batch_size=8, steps=1, warmup=1, width=0.125, seeds=1)

# section name -> (timeout in seconds on a GPU, target column); the timeouts sum to 470 s.
SECTIONS = {
    "pytest -m cuda": (120, "all pass"),
    "mnist-fast time to 99%": (90, f"<= {MNIST_ANCHOR_S} s training (GTX 1660 Ti anchor)"),
    "cifar10-fast vs airbench94": (100, "recipe >= airbench94 loop img/s"),
    "torch.compile": (110, "compiled > eager img/s"),
    "DDP nccl, 1 GPU": (50, "~ plain loop img/s"),
}
SMOKE_TIMEOUT_S = 60


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generated_cifar(count: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random CIFAR-shaped uint8 images ``(count, 3, 32, 32)`` and labels ``(count,)``."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (count,), generator=g)
    return images.to(device), labels.to(device)


def airbench_model(sizes: Sizes, device: torch.device) -> nn.Module:
    """cnnkit's ``airbench`` zoo net on ``device``, channels-last, whitening conv frozen."""
    from cnnkit.models import create  # import cost: the zoo

    model = create("airbench", num_classes=10, in_channels=3, width=sizes.width)
    model.whiten.requires_grad_(False)
    return model.to(device, memory_format=torch.channels_last)


def bare_loop(model: nn.Module, sizes: Sizes, device: torch.device, precision: str,
              wrap: Callable[[nn.Module], nn.Module] = lambda m: m) -> float:
    """Images/s of airbench94's training step (flip, Nesterov SGD, smoothing 0.2) on ``model``.

    Args:
        precision: ``"bf16"`` (autocast) or ``"fp16"`` (autocast + ``torch.amp.GradScaler``).
        wrap: applied to ``model`` before training (``torch.compile``, DDP).

    Shape:
        batches (batch_size, 3, 32, 32) uint8 -> float on the 0-1 scale, channels-last.
    """
    images, labels = generated_cifar(sizes.images, device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.2, momentum=0.85, nesterov=True,
                                weight_decay=5e-4)
    net = wrap(model)
    n = images.shape[0]

    def step(i: int) -> None:
        start = (i * sizes.batch_size) % max(1, n - sizes.batch_size + 1)
        x = images[start:start + sizes.batch_size].float().div_(255)
        flip = torch.rand(x.shape[0], 1, 1, 1, device=device) < 0.5
        x = torch.where(flip, x.flip(3), x).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype):
            loss = nn.functional.cross_entropy(net(x), labels[start:start + sizes.batch_size],
                                               label_smoothing=0.2)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for i in range(sizes.warmup):
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(sizes.steps):
        step(sizes.warmup + i)
    _sync(device)
    return sizes.steps * sizes.batch_size / (time.perf_counter() - start)


def recipe_images_per_s(sizes: Sizes, device: torch.device, precision: str) -> float:
    """Images/s of one epoch of ``--recipe cifar10-fast`` through cnnkit's Trainer (2nd epoch)."""
    from cnnkit.data.dataset import ImageData  # import cost: cnnkit's training stack
    from cnnkit.data.loader import InMemoryLoader
    from cnnkit.data.normalization import Normalization
    from cnnkit.models import create
    from cnnkit.train import Trainer
    from cnnkit.train.pipeline import EpochAugment
    from cnnkit.train.recipes import prepare_model, recipe_config

    images, labels = generated_cifar(sizes.images, torch.device("cpu"))
    data = ImageData(images, labels, [str(k) for k in range(10)])
    config = recipe_config("cifar10-fast", epochs=2, batch_size=sizes.batch_size,
                           precision=precision, device=device.type, compile=False)
    norm = Normalization.fit(images)
    model = create("airbench", num_classes=10, in_channels=3, width=sizes.width)
    prepare_model(model, norm.apply(images[:5000]))
    augment = EpochAugment(config.augment, num_classes=10, seed=0)
    loader = InMemoryLoader(data, batch_size=config.batch_size, device=device,
                            normalization=norm, augment=augment, channels_last=True)
    trainer = Trainer(model, config, progress=False)
    trainer._build_scheduler(len(loader), 2)
    seconds = 0.0
    for epoch in range(2):
        loader.set_epoch(epoch)
        augment.set_epoch(epoch)
        _sync(device)
        start = time.perf_counter()
        trainer.train_epoch(loader, epoch + 1, 2)
        _sync(device)
        seconds = time.perf_counter() - start
    return sizes.images / seconds


# --------------------------------------------------------------------------- sections
# Each returns {"result": "ok" | "fail" | ..., "figure": str}; it runs in its own process.

def section_pytest(smoke: bool, device: torch.device) -> dict:
    # The smoke run collects one file only: the whole suite's collection is too slow for a test.
    where = ["tests/data/test_stream_batches.py"] if smoke else ["tests"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-n", "0",
                           "-p", "no:cacheprovider", *where], capture_output=True, text=True,
                          cwd=REPO)
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
    return {"result": "ok" if proc.returncode == 0 else f"fail (rc {proc.returncode})",
            "figure": summary}


def section_mnist(smoke: bool, device: torch.device) -> dict:
    from bench.time_to_99 import TARGET, run_recipe  # import cost: the MNIST benchmark

    with run_folders() as folder:
        if smoke:  # the built-in 8x8 digits, one epoch, on the CPU
            command = [str(os.path.join(os.path.dirname(sys.executable), "cnnkit")), "train",
                       "--recipe", "mnist-fast", "--data", "digits", "--epochs", "1",
                       "--device", "cpu", "--out", f"{folder}/smoke", "--no-progress"]
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
            return {"result": "ok", "figure": f"{time.perf_counter() - start:.2f} s wall (smoke)"}
        runs = [run_recipe(seed, folder) for seed in range(SIZES.seeds)]
    accuracy = statistics.mean(r["accuracy"] for r in runs)
    wall = statistics.median(r["time_s"] for r in runs)
    return {"result": "ok" if accuracy >= TARGET else "below 99%",
            "figure": f"{wall:.2f} s wall median (incl. start-up), test acc "
                      f"{100 * accuracy:.2f}% mean of {len(runs)} (data {SHARED_DATA})"}


def section_cifar(smoke: bool, device: torch.device) -> dict:
    figures = []
    for precision in ("bf16", "fp16"):
        recipe = recipe_images_per_s(SIZES, device, precision)
        bare = bare_loop(airbench_model(SIZES, device), SIZES, device, precision)
        figures.append(f"{precision}: recipe {recipe:,.0f} vs airbench94 {bare:,.0f} img/s")
    return {"result": "ok", "figure": f"batch {SIZES.batch_size}; " + "; ".join(figures)}


def section_compile(smoke: bool, device: torch.device) -> dict:
    # inductor needs a C++/Triton toolchain; the smoke run checks the dynamo path with "eager".
    backend = "eager" if smoke else "inductor"
    eager = bare_loop(airbench_model(SIZES, device), SIZES, device, "bf16")
    compiled = bare_loop(airbench_model(SIZES, device), SIZES, device, "bf16",
                         wrap=lambda m: torch.compile(m, backend=backend))
    return {"result": "ok", "figure": f"bf16: compiled ({backend}) {compiled:,.0f} vs eager "
                                      f"{eager:,.0f} img/s ({compiled / eager:.2f}x)"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def section_ddp(smoke: bool, device: torch.device) -> dict:
    backend = "gloo" if smoke else "nccl"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)
    try:
        ids = [device.index or 0] if device.type == "cuda" else None
        ddp = bare_loop(airbench_model(SIZES, device), SIZES, device, "bf16",
                        wrap=lambda m: DistributedDataParallel(m, device_ids=ids))
    finally:
        dist.destroy_process_group()
    plain = bare_loop(airbench_model(SIZES, device), SIZES, device, "bf16")
    return {"result": "ok", "figure": f"bf16, {backend}: DDP {ddp:,.0f} vs plain {plain:,.0f} "
                                      f"img/s ({ddp / plain:.2f}x)"}


RUNNERS = dict(zip(SECTIONS, (section_pytest, section_mnist, section_cifar, section_compile,
                              section_ddp)))
SIZES = GPU_SIZES  # the worker process replaces it with SMOKE_SIZES under --cpu-smoke


def run_section(name: str, smoke: bool) -> list[str]:
    """Run one section in a fresh process; return its table row (a failure is a row too)."""
    timeout = SMOKE_TIMEOUT_S if smoke else SECTIONS[name][0]
    command = [sys.executable, "-m", "bench.gpu_check", "--worker", name]
    if smoke:
        command.append("--cpu-smoke")
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                              timeout=timeout)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and lines:
            row = json.loads(lines[-1])
        else:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            row = {"result": f"error (rc {proc.returncode})", "figure": last[:160]}
    except subprocess.TimeoutExpired:
        row = {"result": f"timeout ({timeout} s)", "figure": ""}
    elapsed = time.perf_counter() - start
    print(f"  {name}: {row['result']} in {elapsed:.1f} s", flush=True)
    return [name, row["result"], row["figure"], SECTIONS[name][1], f"{elapsed:.1f}"]


def main(argv: list[str] | None = None) -> int:
    global SIZES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run every section on the CPU with tiny sizes (checks the script)")
    parser.add_argument("--worker", choices=list(SECTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        SIZES = SMOKE_SIZES if args.cpu_smoke else GPU_SIZES
        device = torch.device("cpu") if args.cpu_smoke else torch.device("cuda", 0)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        print(json.dumps(RUNNERS[args.worker](args.cpu_smoke, device)))
        return 0
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA device: GPU sections skipped")
        return 0
    gpu = "CPU smoke run" if args.cpu_smoke else torch.cuda.get_device_name(0)
    print(f"{machine_note()} · {gpu}")
    start = time.perf_counter()
    rows = [run_section(name, args.cpu_smoke) for name in SECTIONS]
    print_table(f"GPU check ({gpu}, {time.perf_counter() - start:.0f} s)",
                ["section", "result", "figure", "target", "s"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
