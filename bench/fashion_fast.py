"""Benchmark 3: Fashion-MNIST with ``--recipe fashion-fast`` vs the same network in plain PyTorch.

Run from the repository root:
    .venv/bin/python -m bench.fashion_fast [--seeds 3] [--epochs E] [--data-dir ../shared/data]

Both contenders train the recipe's network with the recipe's hyperparameters (read from
``cnnkit.train.recipes``, so the two cannot drift apart) and are timed as whole commands from
the shell's point of view, in fresh processes, alternating seed by seed (cnnkit, plain, cnnkit,
plain, ...); the table shows each seed and the medians. Contenders:

* ``cnnkit``: ``cnnkit train --recipe fashion-fast --data-dir DATA --seed S`` as a user runs it
  (reading the IDX files, training, the test evaluation, writing the run folder and pictures).
* ``plain PyTorch``: a script with the loop of the PyTorch tutorials: the IDX files read with
  numpy, images scaled to 0–1 and standardised by the training set's mean/std,
  ``TensorDataset`` + ``DataLoader(shuffle=True)``, the same ``nn.Sequential`` (checked layer
  by layer against cnnkit's in the test suite), Adam with ``OneCycleLR`` (30 % ramp from
  1/25 of the peak, cosine down, ``cycle_momentum=False`` so Adam's betas stay fixed as in
  cnnkit), cross-entropy with the recipe's label smoothing, a random horizontal flip of half of
  each batch's images, and the recipe's test-time flip averaging when it has one. It writes
  nothing to disk (to its advantage).

The figures quoted by the results: cnnkit's median wall time, and the ratio of the medians
cnnkit / plain PyTorch (below 1: cnnkit is faster), with test accuracy (mean ± std) of each.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench._common import (REPO, SHARED_DATA, cnnkit_argv, machine_note, mean_std_percent,
                           print_table, run_folders, timed)

RECIPE = "fashion-fast"


def plain_model() -> nn.Sequential:
    """The recipe's ``conv(32,5,padding=same) maxpool(2) bn relu conv(64,3,padding=same)
    maxpool(2) bn relu fc(128) bn relu fc(10)`` written in plain PyTorch."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.MaxPool2d(2),  # (N, 1, 28, 28) -> (N, 32, 14, 14)
        nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2),  # -> (N, 64, 7, 7)
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(),  # (N, 64, 7, 7) -> (N, 3136)
        nn.Linear(3136, 128), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 10))  # -> (N, 10)


def recipe_settings(epochs: int | None = None) -> dict:
    """The recipe's hyperparameters that the plain loop needs (``epochs`` overrides)."""
    from cnnkit.train.recipes import recipe_config

    config = recipe_config(RECIPE)
    if config.augment not in ("flip", "hflip"):
        raise SystemExit(f"bench.fashion_fast's plain loop does flips only; the recipe now "
                         f"augments with {config.augment!r}: add that to plain_train")
    return {"epochs": epochs or config.epochs, "batch_size": config.batch_size,
            "lr": config.lr, "label_smoothing": config.label_smoothing,
            "weight_decay": config.weight_decay, "tta": bool(config.tta)}


def read_idx(path: Path) -> np.ndarray:
    """An IDX (.gz) file as a numpy array (the plain loop reads its data itself)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(folder: Path, stem: str) -> Path:
    for suffix in (".gz", ""):
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    raise SystemExit(f"no {stem}[.gz] in {folder}: give --data-dir the folder holding "
                     f"fashion-mnist/ (see ../shared/data/README.md)")


def plain_train(folder: Path, seed: int, settings: dict) -> dict:
    """Train and test :func:`plain_model` in this process; the test accuracy and train time."""
    torch.manual_seed(seed)
    x = torch.from_numpy(read_idx(find(folder, "train-images-idx3-ubyte")).copy())
    y = torch.from_numpy(read_idx(find(folder, "train-labels-idx1-ubyte")).astype(np.int64))
    xt = torch.from_numpy(read_idx(find(folder, "t10k-images-idx3-ubyte")).copy())
    yt = torch.from_numpy(read_idx(find(folder, "t10k-labels-idx1-ubyte")).astype(np.int64))
    x, xt = x[:, None].float() / 255, xt[:, None].float() / 255  # (N, 28, 28) -> (N, 1, 28, 28)
    mean, std = x.mean(), x.std()
    x, xt = (x - mean) / std, (xt - mean) / std
    loader = DataLoader(TensorDataset(x, y), batch_size=settings["batch_size"], shuffle=True)
    model = plain_model()
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"],
                           weight_decay=settings["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings["lr"], total_steps=settings["epochs"] * len(loader), pct_start=0.3,
        div_factor=25.0, cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings["label_smoothing"])

    def train():
        for _ in range(settings["epochs"]):
            model.train()
            for xb, yb in loader:
                flip = torch.rand(len(xb)) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
                sched.step()

    seconds, _ = timed(train)
    model.eval()
    with torch.no_grad():
        scores = []
        for i in range(0, len(xt), 1000):
            batch = xt[i:i + 1000]
            p = model(batch).softmax(1)
            if settings["tta"]:
                p = (p + model(batch.flip(3)).softmax(1)) / 2
            scores.append(p)
    accuracy = (torch.cat(scores).argmax(1) == yt).float().mean().item()
    return {"accuracy": accuracy, "train_s": seconds}


def run_plain(data_dir: Path, seed: int, settings: dict) -> dict:
    """:func:`plain_train` in a fresh Python process, timed as a whole command."""
    command = [sys.executable, "-m", "bench.fashion_fast", "--worker-plain", str(seed),
               "--data-dir", str(data_dir), "--settings", json.dumps(settings)]
    seconds, proc = timed(lambda: subprocess.run(command, capture_output=True, text=True,
                                                 cwd=REPO, check=True))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": seconds, **result}


def run_cnnkit(data_dir: Path, seed: int, epochs: int | None, folder: str) -> dict:
    """``cnnkit train --recipe fashion-fast`` in a fresh process: wall time, accuracy."""
    command = [*cnnkit_argv(), "train", "--recipe", RECIPE, "--data-dir", str(data_dir),
               "--seed", str(seed), "--out", f"{folder}/seed{seed}", "--no-progress"]
    if epochs:
        command += ["--epochs", str(epochs)]
    seconds, proc = timed(lambda: subprocess.run(command, capture_output=True, text=True,
                                                 cwd=REPO))
    if proc.returncode != 0:
        raise SystemExit(f"cnnkit train failed (exit {proc.returncode}):\n{proc.stderr}")
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", proc.stdout).group(1))
    train_s = sum(float(s) for s in re.findall(r"img/s\s+([0-9.]+)s", proc.stdout))
    return {"wall_s": seconds, "accuracy": accuracy, "train_s": train_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (smoke test)")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA,
                        help="the folder holding fashion-mnist/ (default: ../shared/data)")
    parser.add_argument("--worker-plain", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_plain is not None:
        print(json.dumps(plain_train(args.data_dir / "fashion-mnist", args.worker_plain,
                                     json.loads(args.settings))))
        return
    settings = recipe_settings(args.epochs)
    print(machine_note())
    print(f"settings: {settings}", flush=True)
    runs: dict[str, list[dict]] = {"cnnkit": [], "plain": []}
    with run_folders() as folder:
        for seed in range(args.seeds):
            runs["cnnkit"].append(run_cnnkit(args.data_dir, seed, args.epochs, folder))
            runs["plain"].append(run_plain(args.data_dir, seed, settings))
            for name in runs:
                r = runs[name][-1]
                print(f"  seed {seed} {name}: {r['wall_s']:.1f} s wall, {r['train_s']:.1f} s "
                      f"training, test acc {r['accuracy']:.4f}", flush=True)
    names = {"cnnkit": f"cnnkit train --recipe {RECIPE}", "plain": "plain PyTorch loop"}
    rows = []
    for key, label in names.items():
        wall = statistics.median(r["wall_s"] for r in runs[key])
        train = statistics.median(r["train_s"] for r in runs[key])
        accs = [r["accuracy"] for r in runs[key]]
        rows.append([label, f"{wall:.1f}", f"{train:.1f}", mean_std_percent(accs),
                     f"{100 * min(accs):.2f}"])
    ratio = (statistics.median(r["wall_s"] for r in runs["cnnkit"])
             / statistics.median(r["wall_s"] for r in runs["plain"]))
    train_ratio = (statistics.median(r["train_s"] for r in runs["cnnkit"])
                   / statistics.median(r["train_s"] for r in runs["plain"]))
    rows.append(["ratio cnnkit / plain PyTorch", f"{ratio:.2f}×", f"{train_ratio:.2f}×", "", ""])
    print_table(f"Fashion-MNIST, {RECIPE} vs plain PyTorch, {settings['epochs']} epochs, "
                f"{args.seeds} seeds ({time.strftime('%Y-%m-%d')})",
                ["contender", "wall s (median)", "training s (median)", "test acc % mean ± std",
                 "worst %"], rows)


if __name__ == "__main__":
    main()
