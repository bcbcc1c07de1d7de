"""Benchmark 1: the tutorial CNN, one epoch of MNIST — cnnkit ``fit`` vs plain PyTorch vs Keras 3.

Run from the repository root:  .venv/bin/python -m bench.tutorial_mnist [--repeats 3]

The model and the hyperparameters are fixed for every contender: conv 32@3×3 + ReLU, 2×2 max
pool, flatten, dense 256 + ReLU, dense 10; Adam lr 1e-3, batch 128, one epoch over the 60000
training images (scaled to 0–1), then test accuracy on the 10000 test images. Contenders:

* ``pytorch DataLoader``: the plain PyTorch loop of the tutorials (``TensorDataset`` +
  ``DataLoader(shuffle=True)``, fp32); the reference of the ratios.
* ``pytorch indexing``: the same loop slicing a shuffled tensor instead of a DataLoader.
* ``cnnkit fit``: ``cnnkit.keras`` Sequential + ``compile(optimizer="adam")`` + ``fit`` with its
  defaults: ``precision="auto"`` (bf16 autocast where the CPU has native bf16) and the fused
  Adam kernel.
* ``cnnkit fit fp32``: the same with ``precision="fp32"`` (fused Adam only).
* ``cnnkit fit, malloc untouched``: the defaults but ``tune_allocator=False``, the
  before/after row of the allocator switch.
* ``cnnkit fit, plain flatten``: the defaults with ``Flatten`` put back to ``x.flatten(1)``,
  whose gradient reaches a channels-last max-pool in NCHW layout: the before/after row of
  ``cnnkit.layers.dense._FlattenChannelsLast`` (same arithmetic, same accuracy).
* ``cnnkit fit, relu before pool``: the defaults with ``Sequential.pool_before_relu = False``,
  so the conv's ReLU runs on the full 26×26 volume before the 2×2 max-pool: the before/after
  row of :mod:`cnnkit.models.relu_pool` (identical outputs and gradients).
* ``keras 3 (torch)``: Keras 3 on the torch backend, when ``keras`` is installed.

Each repeat runs every contender once, alternating; the table shows medians. Every run is a
fresh Python process (``--worker NAME``), so nothing one contender sets for its process (cnnkit
tunes glibc's malloc, see ``cnnkit.train.allocator``) helps or hurts the next one. The time is
the training epoch (model built, data already in memory as uint8); accuracy is measured after.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench._common import (alternate, load_mnist, machine_note, matmul_peak_gflops, median_of,
                           print_table, timed)

BATCH, LR = 128, 1e-3
# Per training image: forward MACs of conv (26·26·32·9) + fc1 (5408·256) + fc2 (256·10),
# ×2 FLOPs per MAC, ×3 for forward + the two backward matmuls (the conv's input gradient is
# not needed for the first layer, so this slightly over-counts it).
FLOPS_PER_IMAGE = 3 * 2 * (26 * 26 * 32 * 9 + 5408 * 256 + 256 * 10)


def torch_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # (N, 1, 28, 28) -> (N, 32, 13, 13)
        nn.Flatten(),  # (N, 32, 13, 13) -> (N, 5408)
        nn.Linear(5408, 256), nn.ReLU(), nn.Linear(256, 10))


@torch.no_grad()
def torch_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == y).float().mean().item()


def run_pytorch(x, y, x_test, y_test, seed: int, *, dataloader: bool) -> dict:
    torch.manual_seed(seed)
    model = torch_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def epoch():
        model.train()
        if dataloader:
            batches = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
        else:
            order = torch.randperm(len(x))
            batches = ((x[order[i:i + BATCH]], y[order[i:i + BATCH]])
                       for i in range(0, len(x), BATCH))
        for xb, yb in batches:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    seconds, _ = timed(epoch)
    return {"time_s": seconds, "accuracy": torch_accuracy(model, x_test, y_test)}


def run_cnnkit(x_u8, y, x_test_u8, y_test, seed: int, *, precision: str | None,
               tune_allocator: bool = True) -> dict:
    from cnnkit.keras import layers
    from cnnkit.keras.models import Sequential

    torch.manual_seed(seed)
    model = Sequential([layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                        layers.MaxPooling2D(2), layers.Flatten(),
                        layers.Dense(256, activation="relu"), layers.Dense(10)])
    # "adam" is Keras' Adam with its default lr 1e-3 (= LR); cnnkit builds it fused.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    options = {} if precision is None else {"precision": precision}
    options["tune_allocator"] = tune_allocator
    seconds, _ = timed(lambda: model.fit(x_u8, y, batch_size=BATCH, epochs=1, verbose=0,
                                         seed=seed, **options))
    _, accuracy = model.evaluate(x_test_u8, y_test, batch_size=1000, verbose=0)
    return {"time_s": seconds, "accuracy": accuracy}


def keras_runner(x_u8, y, x_test_u8, y_test):
    """A contender for Keras 3 on the torch backend, or (None, reason) when it is missing."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as exc:
        return None, f"keras is not installed ({exc}); pip install keras"
    if keras.backend.backend() != "torch":
        return None, f"keras uses the {keras.backend.backend()!r} backend, not torch"
    x = (x_u8.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255)  # (N,1,H,W) -> (N,H,W,1)
    xt = (x_test_u8.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255)
    y_np, yt_np = y.numpy(), y_test.numpy()

    def run(seed: int) -> dict:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([
            keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
        model.compile(optimizer=keras.optimizers.Adam(LR), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        seconds, _ = timed(lambda: model.fit(x, y_np, batch_size=BATCH, epochs=1, verbose=0))
        _, accuracy = model.evaluate(xt, yt_np, batch_size=1000, verbose=0)
        return {"time_s": seconds, "accuracy": accuracy}

    return run, ""


CONTENDERS = ("pytorch DataLoader", "pytorch indexing", "cnnkit fit", "cnnkit fit fp32",
              "cnnkit fit, malloc untouched", "cnnkit fit, plain flatten",
              "cnnkit fit, relu before pool", "keras 3 (torch)")


def run_worker(name: str, seed: int) -> dict:
    """One contender's run in this (fresh) process: ``{"time_s", "accuracy"}``."""
    train, test = load_mnist()
    x_u8, y, xt_u8, yt = train.images, train.labels, test.images, test.labels
    if name.startswith("pytorch"):
        x, xt = x_u8.float() / 255, xt_u8.float() / 255
        return run_pytorch(x, y, xt, yt, seed, dataloader=name == "pytorch DataLoader")
    if name == "cnnkit fit":
        return run_cnnkit(x_u8, y, xt_u8, yt, seed, precision=None)
    if name == "cnnkit fit fp32":
        return run_cnnkit(x_u8, y, xt_u8, yt, seed, precision="fp32")
    if name == "cnnkit fit, malloc untouched":
        return run_cnnkit(x_u8, y, xt_u8, yt, seed, precision=None, tune_allocator=False)
    if name == "cnnkit fit, plain flatten":
        from cnnkit.layers import dense  # this process only: the layer as it was before

        dense.Flatten.forward = lambda self, x: x.flatten(1)  # (N, C, H, W) -> (N, C*H*W)
        return run_cnnkit(x_u8, y, xt_u8, yt, seed, precision=None)
    if name == "cnnkit fit, relu before pool":
        from cnnkit.models.sequential import Sequential  # the switch, for this process

        Sequential.pool_before_relu = False
        return run_cnnkit(x_u8, y, xt_u8, yt, seed, precision=None)
    keras_run, reason = keras_runner(x_u8, y, xt_u8, yt)
    if keras_run is None:
        return {"skipped": reason}
    return keras_run(seed)


def in_fresh_process(name: str, seed: int) -> dict:
    """Run ``name`` once in a new Python process and return its measurements."""
    out = subprocess.run([sys.executable, "-m", "bench.tutorial_mnist", "--worker", name,
                          "--seed", str(seed)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras contender")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, help="run only these")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.seed)))
        return

    names = [n for n in (args.only or CONTENDERS) if not (args.no_keras and "keras" in n)]
    contenders = {name: (lambda s, name=name: in_fresh_process(name, s)) for name in names}
    print(machine_note())
    peak = matmul_peak_gflops()
    print(f"fp32 matmul peak (2048², {torch.get_num_threads()} threads): {peak:.0f} GFLOP/s")
    results = alternate(contenders, args.repeats)

    reference_name = names[0]
    reference = median_of(results[reference_name], "time_s")
    rows = []
    for name, runs in results.items():
        if any("skipped" in r for r in runs):
            print(f"skipping {name}: {runs[0]['skipped']}")
            continue
        seconds = median_of(runs, "time_s")
        gflops = FLOPS_PER_IMAGE * 60000 / seconds / 1e9
        accs = [r["accuracy"] for r in runs]
        rows.append([name, f"{seconds:.2f}", f"{seconds / reference:.2f}×",
                     f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f}",
                     f"{gflops:.0f}", f"{100 * gflops / peak:.0f}%"])
    print_table(f"Tutorial CNN, 1 epoch of MNIST (median of {args.repeats}, alternating, "
                "one fresh process per run)",
                ["contender", "s/epoch", f"vs {reference_name}", "test acc %", "GFLOP/s",
                 "of fp32 matmul peak"], rows)


if __name__ == "__main__":
    main()
