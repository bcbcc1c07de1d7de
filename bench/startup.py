"""Benchmark: start-up of the CLI, and of ``cnnkit serve`` until it answers, vs ``import torch``.

Run from the repository root:
    .venv/bin/python -m bench.startup [--repeats 7] [--run RUN]

Each contender is a fresh process, the contenders alternate round by round (so load on a
shared machine hits all alike), and the table gives the median wall time and its ratio to
``python -c "import torch"``, the floor of anything that runs a network:

* ``cnnkit --help`` and ``cnnkit models``: targets ≤ 0.3× (they never import torch);
* ``cnnkit serve RUN`` (``--backend auto``, the default) with the run's ONNX export already
  cached in ``RUN/.cache``: from the process start to the first ``GET /health`` answered 200,
  target ≤ 1.5×. ``--backend torch`` is measured beside it.

Without ``--run`` the benchmark trains a small classifier first (``cnnkit train`` on the
built-in digits, 1 epoch, in a temporary folder) and warms its export cache with one serve.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench._common import cnnkit_argv, machine_note, print_table, run_folders

TARGETS = {"cnnkit --help": 0.3, "cnnkit models": 0.3, "cnnkit serve (auto, cached export)": 1.5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_command(argv: list[str]) -> float:
    """Seconds from spawn to exit of ``argv`` (its output discarded); raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def time_serve_ready(run: Path, backend: str, timeout: float = 120.0) -> float:
    """Seconds from spawning ``cnnkit serve RUN`` to its first 200 on ``GET /health``."""
    port = _free_port()
    argv = [*cnnkit_argv(), "serve", str(run), "--port", str(port), "--backend", backend]
    start = time.perf_counter()
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/health"
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"cnnkit serve exited {server.returncode}: "
                                   f"{server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200 and json.load(response)["status"] == "ok":
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet: ask again (the poll is the measurement's resolution)
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"cnnkit serve did not answer /health within {timeout:.0f} s")
            time.sleep(0.01)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def train_small_run(folder: Path) -> Path:
    """A 1-epoch classifier on the built-in digits, in ``folder / "run"``."""
    run = folder / "run"
    time_command([*cnnkit_argv(), "train", "--epochs", "1", "--out", str(run), "--no-tensorboard"])
    return run


def measure(run: Path, repeats: int) -> dict[str, list[float]]:
    """Alternating rounds of every contender; name -> seconds per round."""
    contenders = {
        "python -c 'import torch'": lambda: time_command([sys.executable, "-c", "import torch"]),
        "cnnkit --help": lambda: time_command([*cnnkit_argv(), "--help"]),
        "cnnkit models": lambda: time_command([*cnnkit_argv(), "models"]),
        "cnnkit serve (auto, cached export)": lambda: time_serve_ready(run, "auto"),
        "cnnkit serve (--backend torch)": lambda: time_serve_ready(run, "torch"),
    }
    time_serve_ready(run, "auto")  # exports once into RUN/.cache (not timed)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(repeats):
        for name, fn in contenders.items():
            times[name].append(fn())
            print(f"  round {repeat + 1}/{repeats} {name}: {times[name][-1]:.3f} s", flush=True)
    return times


def table_rows(times: dict[str, list[float]]) -> list[list[str]]:
    floor = statistics.median(times["python -c 'import torch'"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else ("met" if median / floor <= target else "missed")
        rows.append([name, f"{median:.3f}", f"{min(values):.3f}", f"{max(values):.3f}",
                     f"{median / floor:.2f}x", f"<= {target}x {verdict}" if target else ""])
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds")
    parser.add_argument("--run", type=Path, default=None,
                        help="a classifier run folder to serve (default: train a small one)")
    args = parser.parse_args(argv)
    print(machine_note())
    with run_folders(prefix="cnnkit-startup-") as tmp:
        run = args.run if args.run is not None else train_small_run(Path(tmp))
        times = measure(run, args.repeats)
    print_table(f"Start-up, seconds (median of {args.repeats} alternating fresh processes)",
                ["command", "median s", "min s", "max s", "vs import torch", "target"],
                table_rows(times))


if __name__ == "__main__":
    main()
