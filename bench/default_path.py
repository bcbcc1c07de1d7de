"""Benchmark: the default path, ``cnnkit train --data mnist`` with no other flag, vs mnist-fast.

Run from the repository root:
    CNNKIT_DATA=../shared/data .venv/bin/python -m bench.default_path [--repeats 3] [--epochs 1]

Three commands, each a fresh process, alternating round by round; each reports the training
images/s of its epochs (``images_per_s`` of ``RUN/results.json``, the figure the progress line
prints) and its test accuracy:

* ``default``: ``cnnkit train --data mnist`` (a named dataset with a tuned recipe uses it);
* ``mnist-fast``: ``cnnkit train --recipe mnist-fast``, the reference of the ratios;
* ``generic (--no-recipe)``: the generic default model and settings, opted out of the recipe.

Targets: the default's images/s ≥ 1.0× mnist-fast's (issue #19 item 4), and the generic
default model at least as fast per image as mnist-fast's net (issue #18 item 3).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from bench._common import cnnkit_argv, machine_note, print_table, run_folders
from cnnkit.viz import curves_job

COMMANDS = {
    "default": ["--data", "mnist"],
    "mnist-fast": ["--recipe", "mnist-fast"],
    "generic (--no-recipe)": ["--data", "mnist", "--no-recipe"],
}


def run_once(flags: list[str], out: Path, epochs: int, extra: list[str]) -> dict:
    """One ``cnnkit train`` process; its images/s, test accuracy and first output line."""
    argv = [*cnnkit_argv(), "train", *flags, "--epochs", str(epochs), "--out", str(out),
            "--overwrite", "--no-tensorboard", "--no-progress", *extra]
    done = subprocess.run(argv, capture_output=True, text=True)
    curves_job.wait_for(out)  # its curves.png is drawn after it exits: not during the next run
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    first = (done.stdout + done.stderr).strip().splitlines()[0]
    return {"images_per_s": float(results["images_per_s"]),
            "test_accuracy": float(results["test_accuracy"]), "first_line": first}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of every command")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="more flags for every command (tests: a small subset)")
    args = parser.parse_args(argv)
    print(machine_note())
    runs: dict[str, list[dict]] = {name: [] for name in COMMANDS}
    with run_folders(prefix="cnnkit-default-") as tmp:
        for repeat in range(args.repeats):
            for i, (name, flags) in enumerate(COMMANDS.items()):
                result = run_once(flags, Path(tmp) / f"run{i}", args.epochs, args.extra)
                runs[name].append(result)
                print(f"  round {repeat + 1}/{args.repeats} {name}: "
                      f"{result['images_per_s']:.0f} img/s, "
                      f"test acc {result['test_accuracy']:.4f}", flush=True)
    reference = statistics.median(r["images_per_s"] for r in runs["mnist-fast"])
    rows = []
    for name, flags in COMMANDS.items():
        speed = statistics.median(r["images_per_s"] for r in runs[name])
        accuracy = statistics.mean(r["test_accuracy"] for r in runs[name])
        rows.append([f"cnnkit train {' '.join(flags)}", f"{speed:.0f}",
                     f"{speed / reference:.2f}x", f"{accuracy * 100:.2f}",
                     runs[name][0]["first_line"][:60]])
    print_table(f"Default path, {args.epochs} epoch(s) of MNIST (median images/s of "
                f"{args.repeats} alternating fresh processes)",
                ["command", "images/s", "vs mnist-fast", "test acc %", "first line"], rows)


if __name__ == "__main__":
    main()
