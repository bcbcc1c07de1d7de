"""Is the data loader ever the bottleneck? Images/s of cnnkit's loaders against the work around them.

Run from the repository root:  .venv/bin/python -m bench.data_loader [--threads 2] [--files 3000]

Three comparisons, each printed as a table with the ratio (> 1: faster than the reference).
Contenders run alternately (A, B, C, A, B, C, ...) after one warm-up each; the tables give the
best and the median of ``--repeats`` rounds (the best run is the one least disturbed by other jobs
on a shared machine).

1. In memory (MNIST, 60000 x 28x28x1, batch 128, normalised): ``InMemoryLoader`` alone for a
   full epoch, against the training step of a small CNN (conv 32@3x3 + ReLU, max-pool 2,
   fc 256 + ReLU, fc 10; Adam) on the same batches. The loader must be much faster than the
   step, or it would slow training down.
2. Streaming PNG (``--files`` MNIST digits written as PNG class folders in a temp dir):
   ``StreamingLoader`` with ``--workers`` processes (decode + batch + normalise: float32 batches
   out), against ``decode_image`` alone and bare Pillow decodes of the same files into uint8
   28x28 arrays, each in a ``multiprocessing.Pool`` of as many processes: one array per file
   (``np.asarray(Image.open(f).convert("L"))``, ``Pool.map`` in chunks of one batch: the
   issue's reference), and the stricter one uint8 (128, 1, 28, 28) array per task, with and
   without the ``convert`` (the PNGs are grey already). The loader's main process gets the
   torch threads the workers leave free (``cores - workers``, at least 1); a second row gives
   it ``--threads`` to show what oversubscribing the cores costs.
3. Streaming JPEG (``--jpeg`` synthetic 384x512 colour photos, resized to 64x64 by "crop"):
   the same contenders; the bare Pillow rows decode at full size then ``ImageOps.fit``, with and
   without ``Image.draft`` (what ``decode_image`` does for large JPEGs).

MNIST comes from ``$CNNKIT_SHARED_DATA/mnist`` (default ``../shared/data/mnist``); the default
run takes under a minute on two cores.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from bench._common import MNIST, alternate, machine_note, print_table
from cnnkit.data.dataset import ImageData
from cnnkit.data.folder import decode_image
from cnnkit.data.idx import find_idx_pair, load_idx
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.data.stream import StreamingLoader

BATCH = 128
JPEG_SIZE = (64, 64)  # (H, W) the JPEG photos are resized to


# ------------------------------------------------------------------ timing helpers

def rates(contenders: dict[str, Callable[[], int]], repeats: int) -> dict[str, list[float]]:
    """Images/s of each ``fn()`` (which returns how many images it handled): one warm-up each,
    then ``repeats`` alternating rounds."""
    for fn in contenders.values():
        fn()

    def timed_rate(fn: Callable[[], int]) -> Callable[[int], dict]:
        def run(_repeat: int) -> dict:
            start = time.perf_counter()
            n = fn()
            return {"images/s": n / (time.perf_counter() - start)}
        return run

    results = alternate({name: timed_rate(fn) for name, fn in contenders.items()}, repeats)
    return {name: [r["images/s"] for r in runs] for name, runs in results.items()}


def table(title: str, measured: dict[str, list[float]], reference: str,
          stricter: tuple[str, ...] = ()) -> None:
    """Print images/s (best and median of the rounds), the ratios to ``reference`` (best and
    median) and, by the median, the ratio to each ``stricter`` reference."""
    numbers = {name: i for i, name in enumerate(measured, 1)}
    medians = {name: statistics.median(runs) for name, runs in measured.items()}
    headers = ["contender", "images/s best", "images/s median", "ratio (best)", "ratio (median)"]
    headers += [f"vs {numbers[other]}. (median)" for other in stricter]
    rows = []
    for name, runs in measured.items():
        row = [f"{numbers[name]}. {name}", f"{max(runs):,.0f}", f"{medians[name]:,.0f}",
               f"{max(runs) / max(measured[reference]):.2f}x",
               f"{medians[name] / medians[reference]:.2f}x"]
        row += [f"{medians[name] / medians[other]:.2f}x" for other in stricter]
        rows.append(row)
    print_table(title, headers, rows)
    print(f"\nratio columns: against {numbers[reference]}. {reference}")


# ------------------------------------------------------------------ 1. in memory

def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # (N, 1, 28, 28) -> (N, 32, 13, 13)
        nn.Flatten(),  # (N, 32, 13, 13) -> (N, 5408)
        nn.Linear(32 * 13 * 13, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def bench_in_memory(data: ImageData, *, train_batches: int, repeats: int) -> None:
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

    measured = rates({"InMemoryLoader (index + normalise)": one_epoch,
                      "training step (small CNN, Adam)": train_steps}, repeats)
    table("In memory: loader alone vs training step", measured,
          "training step (small CNN, Adam)")


# ------------------------------------------------------------------ 2./3. streaming

def write_pngs(data: ImageData, root: Path, count: int) -> None:
    for i in range(count):
        folder = root / data.class_names[int(data.labels[i])]
        folder.mkdir(exist_ok=True)
        Image.fromarray(data.images[i, 0].numpy()).save(folder / f"{i:05d}.png")  # (1, H, W) -> (H, W)


def write_jpegs(root: Path, count: int) -> None:
    """Smooth 384x512 colour pictures with a little noise (JPEG-friendly, like photos)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:384, 0:512]
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(exist_ok=True)
        pixels = np.stack([(x * (1 + i % 7) / 4) % 256, (y * (1 + i % 5) / 3) % 256,
                           ((x + y) / 4 + 9 * i) % 256], axis=-1)  # (H, W, 3)
        pixels = (pixels + rng.normal(0, 12, pixels.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def pillow_grey(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def pillow_grey_batch(paths: list[Path]) -> np.ndarray:
    """One uint8 (B, 1, 28, 28) array for a batch of files, as the loader's workers return."""
    out = np.empty((len(paths), 1, 28, 28), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i, 0] = np.asarray(image.convert("L"), dtype=np.uint8)
    return out


def pillow_grey_batch_no_convert(paths: list[Path]) -> np.ndarray:
    """The strictest bare decode: the PNGs are 8-bit grey already, so no ``convert``."""
    out = np.empty((len(paths), 1, 28, 28), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i, 0] = np.asarray(image, dtype=np.uint8)
    return out


def cnnkit_grey(path: Path) -> np.ndarray:
    return decode_image(path, channels=1, size=(28, 28))


def _fit_photo(image: Image.Image) -> np.ndarray:
    fitted = ImageOps.fit(image.convert("RGB"), JPEG_SIZE[::-1], Image.Resampling.BILINEAR)
    return np.asarray(fitted, dtype=np.uint8)


def pillow_photo_batch(paths: list[Path]) -> np.ndarray:
    """Full-size decode, then crop-resize: one uint8 (B, H, W, 3) array per batch."""
    out = np.empty((len(paths), *JPEG_SIZE, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i] = _fit_photo(image)
    return out


def pillow_photo_draft_batch(paths: list[Path]) -> np.ndarray:
    """As ``pillow_photo_batch`` with libjpeg's reduced decode first (as Image.thumbnail)."""
    out = np.empty((len(paths), *JPEG_SIZE, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            image.draft("RGB", (2 * JPEG_SIZE[1], 2 * JPEG_SIZE[0]))
            out[i] = _fit_photo(image)
    return out


def cnnkit_photo(path: Path) -> np.ndarray:
    return decode_image(path, channels=3, size=JPEG_SIZE)


def bench_streaming(title: str, root: Path, *, per_file: dict[str, Callable[[Path], np.ndarray]],
                    per_batch: dict[str, Callable[[list[Path]], np.ndarray]], reference: str,
                    stricter: tuple[str, ...], workers: int, threads: int, repeats: int,
                    **loader_options) -> None:
    """Time StreamingLoader on ``root`` against bare decoders in a Pool of ``workers``
    processes: ``per_file`` ones return one array per file (``Pool.map`` in chunks of a
    batch), ``per_batch`` ones one array per batch of files."""
    loader = StreamingLoader.from_folder(root, batch_size=BATCH, num_workers=workers,
                                         **loader_options)
    paths = [path for path, _ in loader.dataset.files]
    batches = [paths[i:i + BATCH] for i in range(0, len(paths), BATCH)]
    free = max(1, (os.cpu_count() or 1) - workers)
    processes = max(workers, 1)

    def epoch_with(main_threads: int) -> Callable[[], int]:
        def run() -> int:
            torch.set_num_threads(main_threads)
            try:
                return sum(len(y) for _, y in loader)
            finally:
                torch.set_num_threads(threads)
        return run

    with multiprocessing.get_context("fork").Pool(processes) as pool:
        def files_in(decode: Callable[[Path], np.ndarray]) -> Callable[[], int]:
            return lambda: len(pool.map(decode, paths, chunksize=BATCH))

        def batches_in(decode: Callable[[list[Path]], np.ndarray]) -> Callable[[], int]:
            return lambda: sum(len(batch) for batch in pool.map(decode, batches, chunksize=1))

        contenders = {f"StreamingLoader, {workers} workers, main {free} thread(s)":
                      epoch_with(free)}
        if threads != free:
            contenders[f"StreamingLoader, {workers} workers, main {threads} threads"] = \
                epoch_with(threads)
        contenders.update({name: files_in(fn) for name, fn in per_file.items()})
        contenders.update({name: batches_in(fn) for name, fn in per_batch.items()})
        measured = rates(contenders, repeats)
    del loader  # shuts the persistent workers down before the folder goes
    table(title, measured, reference, stricter)
    print(f"Pool rows: {processes} processes; the loader's main process: torch threads as named")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement")
    parser.add_argument("--train-batches", type=int, default=30, help="batches of training steps")
    parser.add_argument("--files", type=int, default=3000, help="PNG files for the streaming test")
    parser.add_argument("--jpeg", type=int, default=512,
                        help="JPEG photos for the third test (0: skip it)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not MNIST.is_dir():
        raise SystemExit(f"MNIST is not in {MNIST}; set CNNKIT_SHARED_DATA to the folder holding mnist/")
    data = load_idx(*find_idx_pair(MNIST, "train"))
    print(machine_note())
    print(f"MNIST train {tuple(data.images.shape)}, batch {BATCH}")
    bench_in_memory(data, train_batches=args.train_batches, repeats=args.repeats)

    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        write_pngs(data, Path(tmp), args.files)
        bench_streaming(
            f"Streaming {args.files} MNIST PNG files (28x28 grey): loader vs bare decode",
            Path(tmp),
            per_file={"decode_image, one array per file": cnnkit_grey,
                      "bare Pillow, one array per file": pillow_grey},
            per_batch={"bare Pillow, one array per batch": pillow_grey_batch,
                       "bare Pillow, one array per batch, no convert":
                           pillow_grey_batch_no_convert},
            reference="bare Pillow, one array per file",
            stricter=("bare Pillow, one array per batch",
                      "bare Pillow, one array per batch, no convert"),
            workers=args.workers, threads=args.threads, repeats=args.repeats,
            normalization=Normalization.fit(data.images))
    if args.jpeg:
        with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
            write_jpegs(Path(tmp), args.jpeg)
            bench_streaming(
                f"Streaming {args.jpeg} JPEG photos (384x512 colour -> 64x64 crop)",
                Path(tmp),
                per_file={"decode_image, one array per file": cnnkit_photo},
                per_batch={"bare Pillow, full decode, one array per batch": pillow_photo_batch,
                           "bare Pillow, draft decode, one array per batch":
                               pillow_photo_draft_batch},
                reference="bare Pillow, full decode, one array per batch",
                stricter=("bare Pillow, draft decode, one array per batch",),
                workers=args.workers, threads=args.threads, repeats=args.repeats,
                size=JPEG_SIZE, channels=3)


if __name__ == "__main__":
    main()
