"""Benchmark cnnkit's batched augmentations against kornia.augmentation and a per-sample loop.

Run:  .venv/bin/python bench/augment.py [--threads 1] [--repeats 30]

For each op and batch shape it prints the median milliseconds per batch of

- cnnkit: the batched torch op in ``cnnkit.augment`` (per-sample parameters, no Python loop),
- kornia: the ``kornia.augmentation`` equivalent (skipped with a note if kornia is missing;
  it is an optional extra: ``pip install --no-deps kornia kornia_rs -c constraints.txt``),
- loop: the same cnnkit op called once per image (how per-sample transforms in a Dataset work),

and the ratios kornia / cnnkit and loop / cnnkit (> 1: cnnkit is faster).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from cnnkit.augment import ColorJitter, RandomCrop, RandomFlip, RandomRotation

try:
    import kornia.augmentation as K
except ImportError:  # kornia is optional
    K = None

SHAPES = [(256, 3, 32, 32), (128, 1, 28, 28)]


def ops(channels: int) -> list[tuple[str, Callable, Callable | None]]:
    """(name, cnnkit module, kornia module or None) for one channel count."""
    hue_sat = (0.2, 0.1) if channels == 3 else (0.0, 0.0)
    ours = [
        ("hflip p=0.5", RandomFlip(p=0.5, seed=0)),
        ("crop pad=4", RandomCrop(4, seed=0)),
        ("rotate 10", RandomRotation(10, seed=0)),
        ("jitter", ColorJitter(0.2, 0.2, *hue_sat, seed=0)),
    ]
    theirs = [None] * len(ours)
    if K is not None:
        theirs = [
            K.RandomHorizontalFlip(p=0.5),
            K.RandomCrop((0, 0), padding=4, p=1.0),  # size set per shape in bench_shape
            K.RandomRotation(degrees=10.0, p=1.0),
            K.ColorJitter(0.2, 0.2, *hue_sat, p=1.0),
        ]
    return [(name, op, kornia) for (name, op), kornia in zip(ours, theirs)]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_shape(shape: tuple[int, int, int, int], repeats: int) -> list[tuple]:
    n, c, h, w = shape
    x = torch.rand(shape)
    y = torch.randint(0, 10, (n,))
    rows = []
    for name, ours, kornia in ops(c):
        t_ours = median_ms(lambda: ours(x, y), repeats)
        t_loop = median_ms(lambda: [ours(x[i:i + 1], y[i:i + 1]) for i in range(n)],
                           max(3, repeats // 5))
        t_kornia = None
        if kornia is not None:
            if isinstance(kornia, K.RandomCrop):
                kornia = K.RandomCrop((h, w), padding=4, p=1.0)
            t_kornia = median_ms(lambda: kornia(x), repeats)
        rows.append((f"{name} {tuple(shape)}", t_ours, t_kornia, t_loop))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kornia_note = f"kornia {__import__('kornia').__version__}" if K is not None else "no kornia"
    print(f"torch {torch.__version__}, {kornia_note}, CPU, {args.threads} thread(s), "
          f"median of {args.repeats} calls, ms per batch")
    header = (f"{'op (N, C, H, W)':<34}{'cnnkit':>9}{'kornia':>9}{'loop':>9}"
              f"{'kornia/ours':>13}{'loop/ours':>11}")
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        for label, ours, kornia, loop in bench_shape(shape, args.repeats):
            k_text = f"{kornia:9.2f}" if kornia is not None else f"{'-':>9}"
            ratio = f"{kornia / ours:13.1f}" if kornia is not None else f"{'-':>13}"
            print(f"{label:<34}{ours:9.2f}{k_text}{loop:9.2f}{ratio}{loop / ours:11.1f}")


if __name__ == "__main__":
    main()
