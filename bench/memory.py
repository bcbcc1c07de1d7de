"""Benchmark 6: peak resident memory of benchmark 1 (one MNIST epoch) and of the CIFAR-10 recipe.

Run from the repository root:  .venv/bin/python -m bench.memory [--only mnist|cifar]

Each contender runs in a fresh subprocess (``--worker NAME``), which reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: everything it ever held, the Python interpreter,
torch and the data included).

* MNIST (target <= 1.5 GB): the baseline (interpreter, torch, data), plain PyTorch with a
  DataLoader, and cnnkit's ``fit``, one epoch of the tutorial CNN each.
* CIFAR-10 (target <= 4 GB on CPU): ``cnnkit train --recipe cifar10-fast`` (unchanged but for
  ``epochs=1``: 50,000 images in batches of 1024, then the test set with flip TTA, the
  checkpoint and the run folder; 1 to 6 minutes on 2 shared cores) on **generated** data:
  50,000 + 10,000 random 32x32x3 uint8 images written as real CIFAR-10 python batches
  (``data_batch_1..5``, ``test_batch``, ``batches.meta``) in a temporary folder by this
  process, so the worker reads them through the real CIFAR reader. Memory does not depend on
  the pixel values; accuracy on this data means nothing and is not reported. The recipe's
  other 9 epochs repeat the same allocations (data, model, optimizer, EMA, checkpoint), so one
  epoch should reach the whole run's peak.
"""
from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import REPO, machine_note, peak_rss_mb, print_table

MNIST_CONTENDERS = ("baseline", "pytorch DataLoader", "cnnkit fit")
CIFAR_CONTENDERS = ("cifar baseline", "cifar10-fast recipe")
CONTENDERS = MNIST_CONTENDERS + CIFAR_CONTENDERS
TARGET_MB = 1.5 * 1024
CIFAR_TARGET_MB = 4 * 1024
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


def write_generated_cifar10(folder: Path, *, train: int = 50_000, test: int = 10_000,
                            seed: int = 0) -> Path:
    """Random CIFAR-shaped images as the official python batches, in ``folder``.

    Shape:
        ``data`` of each batch: uint8 (N, 3072) = (N, 3, 32, 32) flattened, labels N ints.
    """
    rng = np.random.default_rng(seed)
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    sizes = [train // 5] * 5 + [test]
    folder.mkdir(parents=True)
    for name, n in zip([*batches, "test_batch"], sizes):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)  # (N, 3, 32, 32) flattened
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{k}.png".encode() for k in range(n)]}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072,
                     b"num_cases_per_batch": train // 5}, f, protocol=2)
    return folder


def cifar_worker(name: str, data: str) -> dict:
    """Open the generated CIFAR-10 folder; "cifar10-fast recipe" also trains on it."""
    import torch

    from cnnkit.data.open import open_data
    from cnnkit.train import train
    from cnnkit.train.recipes import recipe_config

    if name == "cifar baseline":  # interpreter, torch and the decoded data, nothing else
        splits = open_data(data)
        return {"train_images": len(splits.train), "threads": torch.get_num_threads()}

    with tempfile.TemporaryDirectory() as out:
        config = recipe_config("cifar10-fast", data=data, epochs=1, out=str(Path(out) / "run"))
        start = time.perf_counter()
        result = train(config, progress=False)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "threads": torch.get_num_threads(),
            "epochs": len(result.history.epoch), "precision": config.precision}


def worker(name: str, data: str | None = None) -> None:
    """Run one contender and print ``{"rss_mb": ..., ...}`` as JSON."""
    if name in CIFAR_CONTENDERS:
        result = cifar_worker(name, data)
        print(json.dumps({**result, "rss_mb": peak_rss_mb()}))
        return
    from bench import tutorial_mnist as t
    from bench._common import load_mnist

    result: dict = {}
    train, test = load_mnist()  # "baseline" stops here: interpreter, torch and the data
    if name == "cnnkit fit":
        result = t.run_cnnkit(train.images, train.labels, test.images, test.labels, 0,
                              precision=None)
    elif name == "pytorch DataLoader":
        x, xt = train.images.float() / 255, test.images.float() / 255
        result = t.run_pytorch(x, train.labels, xt, test.labels, 0, dataloader=True)
    print(json.dumps({**result, "rss_mb": peak_rss_mb()}))


def run_worker(name: str, *extra: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.memory", "--worker", name, *extra],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def mnist_table() -> None:
    rows = []
    for name in MNIST_CONTENDERS:
        result = run_worker(name)
        verdict = "" if name == "baseline" else \
            ("meets" if result["rss_mb"] <= TARGET_MB else "misses")
        rows.append([name, f"{result['rss_mb']:.0f}", verdict])
    print_table("Peak RSS of one MNIST epoch (tutorial CNN), MiB; target <= 1536",
                ["contender", "peak RSS MiB", "target"], rows)


def cifar_table() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_generated_cifar10(Path(tmp) / "cifar-10-batches-py")
        for name in CIFAR_CONTENDERS:
            result = run_worker(name, "--data", str(data))
            print(f"  {name}: {result}", flush=True)
            ran = "open the data" if name == "cifar baseline" else \
                f"1 epoch in {result['seconds']:.0f} s"
            verdict = "" if name == "cifar baseline" else \
                ("meets" if result["rss_mb"] <= CIFAR_TARGET_MB else "misses")
            rows.append([name, ran, f"{result['rss_mb']:.0f}", verdict])
    print_table("Peak RSS of the cifar10-fast recipe on CPU, GENERATED CIFAR-shaped data "
                "(50,000 + 10,000 random 32x32x3 images as CIFAR-10 python batches), MiB; "
                "target <= 4096", ["contender", "ran", "peak RSS MiB", "target"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("mnist", "cifar"), default=None,
                        help="one of the two tables (default: both)")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data)
        return
    print(machine_note())
    if args.only in (None, "mnist"):
        mnist_table()
    if args.only in (None, "cifar"):
        cifar_table()


if __name__ == "__main__":
    main()
