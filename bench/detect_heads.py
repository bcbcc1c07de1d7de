"""Benchmark: the CenterNet and FCOS detection heads side by side on mnist-detect (issue #16).

Run from the repository root:
    .venv/bin/python -m bench.detect_heads [--seeds 3] [--quick] [--heads centernet fcos]
        [--train-scenes N] [--epochs E]

Each (head, seed) runs the command a user runs, ``cnnkit train --recipe mnist-detect --head H
--seed S``, in a fresh process, the heads alternating (centernet, fcos, centernet, fcos, ...)
so that load from other jobs hits both alike. The wall time covers everything (Python start,
the scenes, training, the test evaluation, the run folder); the metrics are the run's own test
figures from ``results.json``. This process then loads each run (``cnnkit.load``) and times
``predict_task_images`` (decode + class-aware NMS, the path of ``cnnkit predict``) over the
test images after one warm-up pass. The table gives mean ± std over the seeds per head, and
the verdict names the head with the higher mean test mAP@0.5 (ties broken by COCO mAP).

``--quick`` trains on a small scene folder (``cnnkit data make mnist-detect`` with 1000 / 200 /
300 scenes) for 4 epochs: about a minute or two per run on a 2-core CPU; a smoke test of the
script, not a measurement to quote.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

import cnnkit
from bench._common import REPO, SHARED_DATA, machine_note, print_table, run_folders, timed
from cnnkit.data.open_annotated import open_annotated
from cnnkit.run.task_predict import predict_task_images

HEADS = ("centernet", "fcos")
METRICS = ("map50", "map")
QUICK_SCENES = {"train": 1000, "val": 200, "test": 300}
QUICK_EPOCHS = 4
PREDICT_IMAGES = 256  # test images timed per run (the first ones)


def _cnnkit() -> str:
    return str(Path(sys.executable).with_name("cnnkit"))


def _run(command: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def make_scenes(folder: Path, train: int) -> Path:
    """Write a scene folder with ``train`` training scenes (val and test as ``--quick``'s, at
    most ``train``); return its path."""
    data = folder / "scenes"
    sizes = {"train": train, "val": min(train, QUICK_SCENES["val"]),
             "test": min(train, QUICK_SCENES["test"])}
    _run([_cnnkit(), "data", "make", "mnist-detect", str(data), "--data-dir", str(SHARED_DATA),
          *(f"--{split}={n}" for split, n in sizes.items())])
    return data


def predict_speed(loaded, images: torch.Tensor) -> float:
    """Images per second of ``predict_task_images`` on ``images`` (after one warm-up pass)."""
    batch = list(images)
    predict_task_images(loaded, batch[:64])  # warm-up
    seconds, _ = timed(lambda: predict_task_images(loaded, batch))
    return len(batch) / seconds


def run_one(head: str, seed: int, folder: Path, data: Path | None, epochs: int | None,
            test_images: torch.Tensor) -> dict:
    """Train ``head`` with ``seed`` in a new process; wall time, test metrics, params, speed."""
    out = folder / f"{head}-seed{seed}"
    command = [_cnnkit(), "train", "--recipe", "mnist-detect", "--head", head,
               "--data-dir", str(SHARED_DATA), "--seed", str(seed), "--out", str(out),
               "--no-progress"]
    if data is not None:
        command += ["--data", str(data)]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    seconds, _ = timed(lambda: _run(command))
    results = json.loads((out / "results.json").read_text())
    loaded = cnnkit.load(out)
    row = {"time_s": seconds, "params": sum(p.numel() for p in loaded.model.parameters()),
           "images_per_s": predict_speed(loaded, test_images)}
    row.update({key: results[f"test_{key}"] for key in METRICS})
    print(f"  {head} seed {seed}: {seconds:.1f} s, map50 {row['map50']:.4f}, "
          f"map {row['map']:.4f}, {row['images_per_s']:.0f} img/s", flush=True)
    return row


def _mean_std(values: list[float], digits: int) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def summarise(rows: dict[str, list[dict]]) -> tuple[list[list[str]], str]:
    """The table (one row per head) and the one-line verdict."""
    table = [[head, _mean_std([r["map50"] for r in runs], 4),
              _mean_std([r["map"] for r in runs], 4),
              f"{min(r['map50'] for r in runs):.4f}", _mean_std([r["time_s"] for r in runs], 1),
              f"{runs[0]['params']:,}", _mean_std([r["images_per_s"] for r in runs], 0)]
             for head, runs in rows.items()]

    def key(head: str) -> tuple[float, float]:
        return (statistics.mean(r["map50"] for r in rows[head]),
                statistics.mean(r["map"] for r in rows[head]))

    ranked = sorted(rows, key=key, reverse=True)
    shown = ", ".join(f"{head} {key(head)[0]:.4f} / {key(head)[1]:.4f}" for head in ranked)
    verdict = (f"verdict: {ranked[0]} has the highest test mAP@0.5 (mAP@0.5 / COCO mAP: {shown}; "
               f"{len(rows[ranked[0]])} seed(s))")
    return table, verdict


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per head (default 3)")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS),
                        help="the heads to compare (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"small scenes ({QUICK_SCENES['train']} training) and "
                             f"{QUICK_EPOCHS} epochs: a smoke test, not a measurement")
    parser.add_argument("--train-scenes", type=int, default=None,
                        help="training scenes of a generated scene folder (default: the recipe's "
                             f"mnist-detect, {QUICK_SCENES['train']} with --quick)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs (default: the recipe's, {QUICK_EPOCHS} with --quick)")
    args = parser.parse_args(argv)
    print(machine_note())
    rows: dict[str, list[dict]] = {head: [] for head in args.heads}
    with run_folders(prefix="cnnkit-bench-heads-") as tmp:
        folder = Path(tmp)
        train = args.train_scenes or (QUICK_SCENES["train"] if args.quick else None)
        data = make_scenes(folder, train) if train else None
        epochs = args.epochs or (QUICK_EPOCHS if args.quick else None)
        spec = str(data) if data is not None else "mnist-detect"
        test = open_annotated(spec, task="detect", data_dir=SHARED_DATA).test
        test_images = test.images[:PREDICT_IMAGES]
        for seed in range(args.seeds):
            for head in args.heads:
                rows[head].append(run_one(head, seed, folder, data, epochs, test_images))
    table, verdict = summarise(rows)
    mode = "" if data is None and epochs is None else " (shrunk: a smoke test, not a measurement)"
    print_table(f"mnist-detect heads, {args.seeds} seed(s) each, test split{mode}",
                ["head", "mAP@0.5", "COCO mAP", "worst mAP@0.5", "wall time (s)", "parameters",
                 "predict img/s"], table)
    print(verdict)


if __name__ == "__main__":
    main()
