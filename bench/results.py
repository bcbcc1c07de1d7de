"""Benchmark: the published results, each recipe trained from the CLI over seeds (issue #17).

Run from the repository root:
    .venv/bin/python -m bench.results [--only NAME] [--seeds N] [--epochs E] [--keep DIR]

Each seed runs the command a user runs, ``cnnkit train --recipe R --data-dir DATA --seed S``,
in a fresh process; the wall time covers everything (Python start, reading the files,
training, the test evaluation, the run folder). The accuracy is the run's own test figure from
``results.json``. For the Fashion-MNIST recipes the first seed's run is also evaluated with
``cnnkit evaluate RUN --json`` (per-class accuracy) and ``cnnkit show mistakes RUN`` (the
confusion matrix, the per-class bars and the most confident mistakes), and the pictures are
copied to ``bench/results/<recipe>-*.png``.

Rows and targets (issue #17; the anchor is the published figure the row is compared with):

* ``lenet5``: ``mnist-lenet5``, anchor 99.05 %, target >= 99.1 % mean of 5 seeds;
* ``keras``: ``keras-mnist`` (12 epochs as the Keras example), 99.2 %, >= 99.2 % mean of 5;
* ``fashion-fast``: anchor 93.4–93.9 %, >= 94.0 % mean of 3 in <= 3 min wall each;
* ``fashion-best``: ResNet-style, anchor 94.9–95.9 %, >= 95.5 % mean of 3;
* ``transfer``: pretrain the small CNN of ``bench.transfer`` on all of MNIST, fine-tune it on
  100 labelled Fashion-MNIST images per class, against the same network from scratch on the
  same budget (in this process, reusing ``bench.transfer``'s functions).

``--seeds`` and ``--epochs`` override every row's count (``--seeds 1 --epochs 1`` is a smoke
test; its table is not a result).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench._common import (REPO, SHARED_DATA, load_mnist, machine_note, mean_std_percent,
                           print_table, run_folders, timed)
from bench.transfer import SPEC, accuracy, fit
from cnnkit import Sequential
from cnnkit.data.dataset import ImageData
from cnnkit.data.idx import find_idx_pair, load_idx
from cnnkit.data.normalization import Normalization
from cnnkit.transfer_learning import transfer

# ---------------------------------------------------------------------------- the rows
ROWS = {
    "lenet5": {"recipe": "mnist-lenet5", "title": "LeNet-5 on MNIST", "anchor": "99.05 %",
               "target": 0.991, "seeds": 5, "max_s": None},
    "keras": {"recipe": "keras-mnist", "title": "Keras tutorial CNN on MNIST (12 epochs)",
              "anchor": "99.2 %", "target": 0.992, "seeds": 5, "max_s": None},
    "fashion-fast": {"recipe": "fashion-fast", "title": "small CNN on Fashion-MNIST",
                     "anchor": "93.4–93.9 %", "target": 0.940, "seeds": 3, "max_s": 180.0},
    "fashion-best": {"recipe": "fashion-best", "title": "ResNet-18 on Fashion-MNIST",
                     "anchor": "94.9–95.9 %", "target": 0.955, "seeds": 3, "max_s": None},
}
FASHION = SHARED_DATA / "fashion-mnist"
PICTURES = REPO / "bench" / "results"
TRANSFER_PER_CLASS = 100
TRANSFER_EPOCHS = 10      # fine-tune budget, the same for scratch and pretrained
TRANSFER_SEEDS = 5
PRETRAIN_EPOCHS = 1       # on all 60000 MNIST images


# ---------------------------------------------------------------------------- recipe rows
def cnnkit_command(recipe: str, seed: int, out: Path, epochs: int | None) -> list[str]:
    """The ``cnnkit train`` command line of one seed (``--epochs`` only when overridden)."""
    command = [str(Path(sys.executable).with_name("cnnkit")), "train", "--recipe", recipe,
               "--data-dir", str(SHARED_DATA), "--seed", str(seed), "--out", str(out),
               "--no-progress"]
    return command + (["--epochs", str(epochs)] if epochs is not None else [])


def run_seed(row: str, seed: int, folder: Path, epochs: int | None) -> dict:
    """Train one seed in a new process: wall time and test accuracy (from results.json)."""
    recipe = ROWS[row]["recipe"]
    out = folder / f"{recipe}-seed{seed}"
    command = cnnkit_command(recipe, seed, out, epochs)
    seconds, proc = timed(lambda: subprocess.run(command, capture_output=True, text=True,
                                                 cwd=REPO))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    print(f"  {recipe} seed {seed}: {seconds:.1f} s, test accuracy "
          f"{results['test_accuracy']:.4f}", flush=True)
    return {"time_s": seconds, "accuracy": results["test_accuracy"], "run": out}


def cli(*args: str) -> str:
    """Run ``cnnkit ARGS`` with ``$CNNKIT_DATA`` set to the shared data; return its stdout."""
    env = {**os.environ, "CNNKIT_DATA": str(SHARED_DATA)}
    command = [str(Path(sys.executable).with_name("cnnkit")), *args]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def fashion_pictures(recipe: str, run: Path) -> dict:
    """Per-class accuracy (``cnnkit evaluate --json``) and the pictures, copied to bench/results.

    Returns:
        the evaluation's JSON plus ``"pictures"``: the PNG paths written under bench/results.
    """
    report = json.loads(cli("evaluate", str(run), "--json"))
    mistakes = run / "mistakes.png"
    cli("show", "mistakes", str(run), "--data", "fashion-mnist", "--out", str(mistakes))
    PICTURES.mkdir(parents=True, exist_ok=True)
    pictures = []
    for png in sorted(run.glob("*.png")):
        if png.name.startswith("mistakes"):  # + -confusion, -confusion-normalized, -per-class
            target = PICTURES / f"{recipe}-{png.name}"
            shutil.copyfile(png, target)
            pictures.append(str(target.relative_to(REPO)))
    report["pictures"] = pictures
    return report


def summarise(row: str, rows: list[dict], epochs: int | None) -> list[str]:
    """One table row: mean ± std, worst seed, wall time, target met, the command."""
    spec = ROWS[row]
    acc = [r["accuracy"] for r in rows]
    times = [r["time_s"] for r in rows]
    met = statistics.mean(acc) >= spec["target"]
    if spec["max_s"] is not None:
        met = met and max(times) <= spec["max_s"]
    target = f">= {spec['target'] * 100:.1f} %" + (
        f", <= {spec['max_s'] / 60:.0f} min" if spec["max_s"] is not None else "")
    command = f"cnnkit train --recipe {spec['recipe']} --seed S" + (
        f" --epochs {epochs}" if epochs is not None else "")
    return [spec["title"], spec["anchor"], f"{mean_std_percent(acc)} %",
            f"{min(acc) * 100:.2f} %", f"{statistics.mean(times):.0f} s (max {max(times):.0f})",
            str(len(rows)), target, "yes" if met else "NO", f"`{command}`"]


# ---------------------------------------------------------------------------- transfer row
def per_class_subset(data: ImageData, per_class: int, seed: int) -> ImageData:
    """``per_class`` images of every class, drawn at random by ``seed`` (labels unchanged)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for label in range(len(data.class_names)):
        index = (data.labels == label).nonzero().flatten()
        keep.append(index[torch.randperm(len(index), generator=g)[:per_class]])
    keep = torch.cat(keep)
    return ImageData(data.images[keep], data.labels[keep], list(data.class_names))


def transfer_row(seeds: int, epochs: int, pretrain_epochs: int) -> list[str]:
    """MNIST-pretrained vs scratch on 100 Fashion-MNIST images per class, mean ± std."""
    mnist_train, _ = load_mnist()
    fashion_train = load_idx(*find_idx_pair(FASHION, "train"))
    fashion_test = load_idx(*find_idx_pair(FASHION, "test"))
    spec = SPEC.replace("fc(5)", "fc(10)")
    start = time.perf_counter()
    torch.manual_seed(0)
    base = Sequential.from_spec(spec, "28x28x1")
    fit(base, mnist_train, Normalization.fit(mnist_train.images), pretrain_epochs, seed=0)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    results: dict[str, list[float]] = {"scratch": [], "pretrained": []}
    for seed in range(seeds):
        small = per_class_subset(fashion_train, TRANSFER_PER_CLASS, seed)
        norm = Normalization.fit(small.images)
        torch.manual_seed(seed)
        scratch = Sequential.from_spec(spec, "28x28x1")
        results["scratch"].append(accuracy(fit(scratch, small, norm, epochs, seed),
                                           fashion_test, norm))
        model = Sequential.from_spec(spec, "28x28x1")
        model.load_state_dict(state)
        torch.manual_seed(seed)
        transfer(model, 10)  # a new 10-way head; the rest fine-tunes at the same rate
        results["pretrained"].append(accuracy(fit(model, small, norm, epochs, seed),
                                              fashion_test, norm))
        print(f"  transfer seed {seed}: scratch {results['scratch'][-1]:.4f}, pretrained "
              f"{results['pretrained'][-1]:.4f}", flush=True)
    seconds = time.perf_counter() - start

    gain = statistics.mean(results["pretrained"]) - statistics.mean(results["scratch"])
    return [f"transfer MNIST -> Fashion-MNIST, {TRANSFER_PER_CLASS}/class",
            f"scratch {mean_std_percent(results['scratch'])} %",
            f"pretrained {mean_std_percent(results['pretrained'])} %",
            f"{min(results['pretrained']) * 100:.2f} %", f"{seconds:.0f} s (all seeds)",
            str(seeds), "clear win", "yes" if gain > 0 else "NO",
            f"`python -m bench.results --only transfer` ({epochs} epochs)"]


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[*ROWS, "transfer"], action="append",
                        help="run only this row (repeatable; default: all)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per row (default: the row's own, 5 or 3)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every recipe's epochs (smoke tests only)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    rows = args.only or [*ROWS, "transfer"]
    print(machine_note())
    table, details = [], {}
    with run_folders(prefix="cnnkit-bench-results-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if row == "transfer":
                table.append(transfer_row(args.seeds or TRANSFER_SEEDS,
                                          args.epochs or TRANSFER_EPOCHS,
                                          PRETRAIN_EPOCHS))
                continue
            seeds = args.seeds or ROWS[row]["seeds"]
            runs = [run_seed(row, seed, folder, args.epochs) for seed in range(seeds)]
            table.append(summarise(row, runs, args.epochs))
            if row.startswith("fashion"):
                details[row] = fashion_pictures(ROWS[row]["recipe"], runs[0]["run"])
    print_table("Published results (test accuracy; mean ± std over seeds)",
                ["row", "anchor", "mean ± std", "worst seed", "wall time", "seeds", "target",
                 "met", "command"], table)
    for row, report in details.items():
        # per-class accuracy is the recall of each class (cnnkit evaluate --json)
        per_class = ", ".join(f"{name} {value * 100:.1f}"
                              for name, value in zip(report["class_names"], report["recall"]))
        print(f"\n{row}: per-class accuracy (%): {per_class}")
        print(f"{row}: pictures: {', '.join(report['pictures'])}")


if __name__ == "__main__":
    main()
