"""Benchmark 6: peak resident memory of benchmark 1 (one MNIST epoch), cnnkit vs plain PyTorch.

Run from the repository root:  .venv/bin/python -m bench.memory

Each contender runs in a fresh subprocess (``--worker NAME``), which reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: everything it ever held, the Python interpreter,
torch and the data included). Target: <= 1.5 GB for benchmark 1. The CIFAR-10 recipe's peak RSS
(target <= 4 GB on CPU) is printed by ``bench.cifar_fast`` when CIFAR-10 is present.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench._common import REPO, machine_note, peak_rss_mb, print_table

CONTENDERS = ("baseline", "pytorch DataLoader", "cnnkit fit")
TARGET_MB = 1.5 * 1024


def worker(name: str) -> None:
    """Run one contender for one epoch and print ``{"rss_mb": ..., ...}`` as JSON."""
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    print(machine_note())
    rows = []
    for name in CONTENDERS:
        out = subprocess.run([sys.executable, "-m", "bench.memory", "--worker", name], cwd=REPO,
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        verdict = "" if name == "baseline" else \
            ("meets" if result["rss_mb"] <= TARGET_MB else "misses")
        rows.append([name, f"{result['rss_mb']:.0f}", verdict])
    print_table("Peak RSS of one MNIST epoch (tutorial CNN), MiB; target <= 1536",
                ["contender", "peak RSS MiB", "target"], rows)


if __name__ == "__main__":
    main()
