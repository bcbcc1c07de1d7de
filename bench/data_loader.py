"""Is the data loader ever the bottleneck? Images/s of cnnkit's loaders against the work around them.

Run from the repository root:  .venv/bin/python -m bench.data_loader [--threads 2] [--files 3000]

Two comparisons, each printed as a table with the ratio (> 1: the loader is faster):

1. In memory (MNIST, 60000 x 28x28x1, batch 128, normalised): ``InMemoryLoader`` alone for a
   full epoch, against the training step of a small CNN (conv 32@3x3 + ReLU, max-pool 2,
   fc 256 + ReLU, fc 10; Adam) on the same batches. The loader must be much faster than the
   step, or it would slow training down.
2. Streaming (``--files`` MNIST digits written as PNG class folders in a temp dir):
   ``StreamingLoader`` with ``--workers`` processes (decode + collate + normalise), against
   ``decode_image`` alone and a bare Pillow decode of the same files, each in a
   ``multiprocessing.Pool`` of as many processes. StreamingLoader vs ``decode_image`` is the
   loader's own overhead; ``decode_image`` vs Pillow is the reader's checks (EXIF, sizes).

MNIST comes from ``$CNNKIT_SHARED_DATA/mnist`` (default ``../shared/data/mnist``); the default
run takes well under two minutes on two cores.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.data.dataset import ImageData
from cnnkit.data.folder import decode_image
from cnnkit.data.idx import find_idx_pair, load_idx
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.data.stream import StreamingLoader

REPO = Path(__file__).resolve().parents[1]
MNIST = Path(os.environ.get("CNNKIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "mnist"
BATCH = 128


# ------------------------------------------------------------------ timing helpers

def best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Images per second of ``fn()`` (which returns how many images it handled), best of
    ``repeats`` runs after one warm-up: the best run is the least disturbed by other jobs."""
    fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return max(rates)


def print_table(title: str, rows: list[tuple[str, float]], reference: str) -> None:
    ref = dict(rows)[reference]
    print(f"\n{title}")
    print(f"  {'':44s} {'images/s':>12s} {'vs ' + reference:>22s}")
    for name, rate in rows:
        print(f"  {name:44s} {rate:12,.0f} {rate / ref:21.2f}x")


# ------------------------------------------------------------------ 1. in memory

def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # (N, 1, 28, 28) -> (N, 32, 13, 13)
        nn.Flatten(),  # (N, 32, 13, 13) -> (N, 5408)
        nn.Linear(32 * 13 * 13, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def bench_in_memory(data: ImageData, *, train_batches: int, repeats: int) -> list[tuple[str, float]]:
    norm = Normalization.fit(data.images)
    loader = InMemoryLoader(data, batch_size=BATCH, normalization=norm, seed=0)

    def one_epoch() -> int:
        return sum(len(y) for _, y in loader)

    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [batch for batch, _ in zip(loader, range(train_batches))]

    def train_steps() -> int:
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return len(batches) * BATCH

    return [("InMemoryLoader (index + normalise)", best_rate(one_epoch, repeats)),
            ("training step (small CNN, Adam)", best_rate(train_steps, repeats))]


# ------------------------------------------------------------------ 2. streaming

def write_pngs(data: ImageData, root: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        folder = root / data.class_names[int(data.labels[i])]
        folder.mkdir(exist_ok=True)
        path = folder / f"{i:05d}.png"
        Image.fromarray(data.images[i, 0].numpy()).save(path)  # (1, H, W) -> (H, W)
        paths.append(path)
    return paths


def pillow_decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def cnnkit_decode(path: Path) -> np.ndarray:
    """The folder reader's decode (EXIF rotation, size checks), without the loader around it."""
    return decode_image(path, channels=1, size=(28, 28))


def bench_streaming(data: ImageData, *, files: int, workers: int,
                    repeats: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        paths = write_pngs(data, Path(tmp), files)
        norm = Normalization.fit(data.images)
        loader = StreamingLoader.from_folder(tmp, batch_size=BATCH, normalization=norm,
                                             num_workers=workers)

        def one_epoch() -> int:
            return sum(len(y) for _, y in loader)

        with multiprocessing.get_context("fork").Pool(max(workers, 1)) as pool:
            def bare(decode: Callable[[Path], np.ndarray]) -> Callable[[], int]:
                return lambda: len(pool.map(decode, paths, chunksize=BATCH))

            pillow = best_rate(bare(pillow_decode), repeats)
            reader = best_rate(bare(cnnkit_decode), repeats)
        streamed = best_rate(one_epoch, repeats)
        del loader  # shuts the persistent workers down before the folder goes
    processes = max(workers, 1)
    return [(f"StreamingLoader ({workers} workers)", streamed),
            (f"decode_image in a Pool ({processes} processes)", reader),
            (f"bare Pillow decode ({processes} processes)", pillow)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--train-batches", type=int, default=30, help="batches of training steps")
    parser.add_argument("--files", type=int, default=3000, help="PNG files for the streaming test")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not MNIST.is_dir():
        raise SystemExit(f"MNIST is not in {MNIST}; set CNNKIT_SHARED_DATA to the folder holding mnist/")
    data = load_idx(*find_idx_pair(MNIST, "train"))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPU(s); "
          f"MNIST train {tuple(data.images.shape)}, batch {BATCH}")
    rows = bench_in_memory(data, train_batches=args.train_batches, repeats=args.repeats)
    print_table("In memory: loader alone vs training step", rows, "training step (small CNN, Adam)")
    rows = bench_streaming(data, files=args.files, workers=args.workers, repeats=args.repeats)
    print_table(f"Streaming {args.files} PNG files: loader vs bare decode", rows,
                rows[-1][0])


if __name__ == "__main__":
    main()
