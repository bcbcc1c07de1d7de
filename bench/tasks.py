"""Benchmark: the localisation, segmentation and detection recipes over several seeds.

Run from the repository root:
    .venv/bin/python -m bench.tasks [--only localize|segment|detect] [--seeds 3]

Each seed runs the command a user runs, ``cnnkit train --recipe mnist-<task> --seed S``, in a
fresh process with the MNIST files of ``../shared/data`` (``--data-dir``); the wall time covers
everything (Python start, generating the scenes, training, the test evaluation, the run
folder). The metrics are the run's own test-split figures from ``results.json``, which
``cnnkit evaluate RUN --json`` reproduces. The table gives mean ± std over the seeds and the
worst seed, against the targets of issues #15 and #16:

* mnist-localize: test accuracy >= 98 % and mean IoU >= 0.85;
* mnist-segment: mean IoU >= 0.85 (background + 10 digit classes);
* mnist-detect: mAP@0.5 >= 0.95 and COCO mAP@[.5:.95] >= 0.70.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench._common import REPO, SHARED_DATA, machine_note, print_table, run_folders, timed

TASKS = {
    "localize": {"recipe": "mnist-localize", "metrics": ("accuracy", "mean_iou", "iou50"),
                 "targets": {"accuracy": 0.98, "mean_iou": 0.85}},
    "segment": {"recipe": "mnist-segment", "metrics": ("miou", "pixel_accuracy"),
                "targets": {"miou": 0.85}},
    "detect": {"recipe": "mnist-detect", "metrics": ("map50", "map"),
               "targets": {"map50": 0.95, "map": 0.70}},
}


def run_seed(task: str, seed: int, folder: str) -> dict:
    """``cnnkit train --recipe mnist-<task> --seed S`` in a new process: wall time + test metrics."""
    spec = TASKS[task]
    out = Path(folder) / f"{task}-seed{seed}"
    command = [str(Path(sys.executable).with_name("cnnkit")), "train", "--recipe", spec["recipe"],
               "--data-dir", str(SHARED_DATA), "--seed", str(seed), "--out", str(out),
               "--no-progress"]
    seconds, proc = timed(lambda: subprocess.run(command, capture_output=True, text=True,
                                                 cwd=REPO))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    row = {"time_s": seconds, "epochs": results["epochs"]}
    row.update({key: results[f"test_{key}"] for key in spec["metrics"]})
    shown = ", ".join(f"{key} {row[key]:.4f}" for key in spec["metrics"])
    print(f"  {spec['recipe']} seed {seed}: {seconds:.1f} s, {shown}", flush=True)
    return row


def summarise(task: str, rows: list[dict]) -> list[list[str]]:
    """One table row per metric: mean ± std, worst seed, target and whether it is met."""
    spec = TASKS[task]
    table = []
    for key in spec["metrics"]:
        values = [r[key] for r in rows]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        target = spec["targets"].get(key)
        met = "" if target is None else ("yes" if statistics.mean(values) >= target else "NO")
        table.append([spec["recipe"], key, f"{statistics.mean(values):.4f} ± {std:.4f}",
                      f"{min(values):.4f}", "" if target is None else f">= {target}", met])
    times = [r["time_s"] for r in rows]
    table.append([spec["recipe"], "wall time (s)", f"{statistics.mean(times):.1f} ± "
                  f"{statistics.stdev(times) if len(times) > 1 else 0.0:.1f}",
                  f"{max(times):.1f}", "", ""])
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(TASKS), action="append",
                        help="run only this task (repeatable; default: localize and segment)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per task (default 3)")
    args = parser.parse_args(argv)
    tasks = args.only or ["localize", "segment"]
    print(machine_note())
    table = []
    with run_folders(prefix="cnnkit-bench-tasks-") as folder:
        for task in tasks:
            rows = [run_seed(task, seed, folder) for seed in range(args.seeds)]
            table += summarise(task, rows)
    print_table(f"Task recipes, {args.seeds} seeds each (test split)",
                ["recipe", "metric", "mean ± std", "worst seed", "target", "met"], table)


if __name__ == "__main__":
    main()
