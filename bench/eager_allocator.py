"""Benchmark: the torch predict backend with and without freed memory kept in the process.

Run from the repository root:
    .venv/bin/python -m bench.eager_allocator [--only lenet5,segment] [--repeats 3]
                                              [--batches 1,32,256]

What ``cnnkit.export.runtime.EAGER_KEEP_FREED_MEMORY`` rests on. glibc's malloc setting
(``cnnkit.train.allocator.keep_freed_memory``) is process-wide and cannot be undone, so every
measurement is a fresh Python process (``--worker NAME --keep 0|1``). It builds the model of
``bench.inference`` (random weights: they do not change the speed), chooses the torch backend
with the switch on or off (``use_backend(loaded, "torch")``: what ``cnnkit.load(RUN)`` and
``--backend torch`` run, channels-last on a CPU in both modes) and times what ``cnnkit
predict`` calls per batch of uint8 images (``predict_proba`` of a classifier,
``predict_task_images`` of a task run) for each batch size. The two modes alternate, ``--repeats``
times. The table: images/s (median), kept / plain, minor page faults per call (``getrusage``)
and whether the two modes' answers are identical (a SHA-256 of every output).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from bench._common import machine_note, print_table
from bench.inference import MODELS, add_model_options, build, chosen_models

#: Seconds of calls per (model, batch) in one worker (at least 3 calls); ``--seconds``.
SECONDS = 1.5


def _digest(value, sha) -> None:
    """Feed every number of a prediction (tensors, arrays, dicts, lists, scalars) to ``sha``."""
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        sha.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            sha.update(str(key).encode())
            _digest(value[key], sha)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _digest(item, sha)
    else:
        sha.update(repr(value).encode())


def run_worker(name: str, keep: bool, batches: list[int], seconds: float = SECONDS) -> dict:
    """In this (fresh) process: the torch backend's predict per batch, the switch as given."""
    from cnnkit.export import runtime
    from cnnkit.export.runtime import use_backend
    from cnnkit.run.task_predict import predict_task_images
    from cnnkit.train import allocator

    runtime.EAGER_KEEP_FREED_MEMORY = keep
    loaded = use_backend(build(name), "torch")
    results = {"tuned": bool(allocator._applied)}
    for batch in batches:
        x = torch.from_numpy(np.random.default_rng(batch).integers(
            0, 256, (batch, *loaded.input_shape), dtype=np.uint8))  # (N, C, H, W)

        def predict():
            if loaded.task == "classify":
                return loaded.predict_proba(x, batch_size=256)
            return predict_task_images(loaded, list(x), batch_size=256)

        sha = hashlib.sha256()
        _digest(predict(), sha)  # the first call: warm-up, and the answers to compare
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        while len(times) < 3 or sum(times) < seconds:
            start = time.perf_counter()
            predict()
            times.append(time.perf_counter() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        results[str(batch)] = {"images_per_s": batch / statistics.median(times),
                               "faults_per_call": faults / len(times),
                               "digest": sha.hexdigest()}
    return results


def _spawn(name: str, keep: bool, batches: list[int], seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.eager_allocator", "--worker", name,
                          "--keep", str(int(keep)), "--batches", ",".join(map(str, batches)),
                          "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, batches: list[int], repeats: int,
            seconds: float = SECONDS) -> list[list[str]]:
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(repeats):  # alternate: the machine's load hits both alike
        for keep in (False, True):
            runs[keep].append(_spawn(name, keep, batches, seconds))
    if not all(r["tuned"] for r in runs[True]) or any(r["tuned"] for r in runs[False]):
        print(f"  {name}: the kept processes did not all tune malloc (not glibc?), or a plain "
              "one did: the columns compare less than they say", flush=True)
    rows = []
    for batch in map(str, batches):
        speed = {k: statistics.median(r[batch]["images_per_s"] for r in runs[k]) for k in runs}
        faults = {k: statistics.median(r[batch]["faults_per_call"] for r in runs[k])
                  for k in runs}
        same = len({r[batch]["digest"] for k in runs for r in runs[k]}) == 1
        rows.append([name, batch, f"{speed[False]:.0f}", f"{speed[True]:.0f}",
                     f"{speed[True] / speed[False]:.2f}", f"{faults[False]:.0f}",
                     f"{faults[True]:.0f}", "yes" if same else "NO"])
        print(f"  {name} batch {batch}: {speed[False]:.0f} / {speed[True]:.0f} img/s",
              flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(parser, repeats=3, batches="1,32,256")
    parser.add_argument("--seconds", type=float, default=SECONDS,
                        help="seconds of calls per model and batch in each process")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=int, choices=(0, 1), default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names, batches = chosen_models(parser, args)
    if args.worker:
        print(json.dumps(run_worker(args.worker, bool(args.keep), batches, args.seconds)))
        return
    print(machine_note(), flush=True)
    rows = [row for name in names
            for row in measure(name, batches, args.repeats, args.seconds)]
    print_table(f"The torch predict backend, freed memory kept or returned (median of "
                f"{args.repeats} alternating fresh processes)",
                ["model", "batch", "plain img/s", "kept img/s", "kept / plain",
                 "plain faults/call", "kept faults/call", "same answers"], rows)


if __name__ == "__main__":
    main()
