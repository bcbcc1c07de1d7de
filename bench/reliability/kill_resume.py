"""Kill ``cnnkit train`` with SIGKILL at random moments, resume it, and prove nothing was lost.

Run from the repository root:  .venv/bin/python -m bench.reliability.kill_resume [--kills 24]

One reference run trains without interruption. The same run is then started again in another
folder and killed ``--kills`` times with SIGKILL (no clean-up code runs), each time at a moment
drawn from three kinds:

- ``write``: the instant a temp file appears in ``RUN/checkpoint/`` (mid checkpoint write);
- ``epoch``: a few milliseconds after the CLI prints an epoch line, which it does just before
  the checkpoint of that epoch is written (lands in or around the write);
- ``random``: a uniform delay after the start (start-up, mid-epoch, evaluation, ...).

After every kill the harness checks, from the files alone, that every checkpoint pair present
is intact (its JSON names the SHA-256 of a loadable safetensors file), that
``load_checkpoint`` succeeds and never goes back in time, and that ``metrics.jsonl`` holds the
epochs 1..k exactly once. Then it resumes (``cnnkit train --resume RUN``; a fresh start with
``--overwrite`` while no checkpoint exists yet). When the run finally finishes, its weights,
its last checkpoint and its per-epoch losses must be bitwise equal to the reference run's.
The default run (digits, 30 epochs, 24 kills) takes about three minutes on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from cnnkit.errors import CheckpointError
from cnnkit.train.atomic import sha256_file
from cnnkit.train.checkpoint import load_checkpoint

KILL_KINDS = ("write", "epoch", "random")
KIND_WEIGHTS = (0.4, 0.3, 0.3)
# Per-epoch values that must be bitwise equal to the reference (timings are not).
COMPARED_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


def train_args(epochs: int) -> list[str]:
    """The ``cnnkit train`` settings of both the reference and the killed run."""
    return ["--data", "digits", "--epochs", str(epochs), "--device", "cpu", "--seed", "0"]


def _env() -> dict[str, str]:
    # One thread everywhere: the same kernels run in every process, so results are bitwise equal.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def _command(run: Path, settings: list[str], fresh: bool) -> list[str]:
    base = [sys.executable, "-m", "cnnkit", "train", "--no-progress"]
    if fresh:
        return [*base, *settings, "--out", str(run), "--overwrite"]
    return [*base, "--resume", str(run)]


def reference_run(run: Path, settings: list[str]) -> None:
    """Train without interruption into ``run`` (raises CalledProcessError on failure)."""
    subprocess.run(_command(run, settings, fresh=True), env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ---------------------------------------------------------------------------- checks from files
def _temp_files(run: Path) -> list[str]:
    return sorted(p.name for folder in (run, run / "checkpoint") if folder.is_dir()
                  for p in folder.iterdir() if p.name.endswith(".tmp"))


def _pairs_intact(ckdir: Path) -> list[str]:
    """Problems with the checkpoint pairs in ``ckdir`` (each JSON must name intact tensors)."""
    problems = []
    for js in sorted(ckdir.glob("*.json")):
        try:
            want = json.loads(js.read_text(encoding="utf-8"))["tensors_sha256"]
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{js.name} unreadable: {exc}")
            continue
        matches = [st for st in ckdir.glob("*.safetensors") if sha256_file(st) == want]
        if not matches:
            problems.append(f"{js.name} names a tensor file that does not exist")
            continue
        try:
            load_file(str(matches[0]))
        except SafetensorError as exc:
            problems.append(f"{matches[0].name} does not load: {exc}")
    return problems


def _metric_epochs(run: Path) -> list[int] | str:
    """The epoch numbers in metrics.jsonl, or a description of a torn/unreadable line."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines = lines[:-1]  # cut short by the kill: resume drops it (run_folder.read_metrics)
    epochs = []
    for i, line in enumerate(lines, 1):
        try:
            epochs.append(int(json.loads(line)["epoch"]))
        except (ValueError, KeyError) as exc:
            return f"line {i} unreadable ({exc}): {line[:60]!r}"
    return epochs


@dataclass
class KillReport:
    """What the harness did and found."""

    runs_completed: int = 0
    kills: Counter = field(default_factory=Counter)
    kills_in_write: int = 0
    resumes: int = 0
    fresh_restarts: int = 0
    checkpoint_checks: int = 0
    failures: list[str] = field(default_factory=list)
    weights_equal: bool | None = None  # these three: over every complete run
    checkpoint_equal: bool | None = None
    metrics_equal: bool | None = None
    seconds: float = 0.0

    @property
    def total_kills(self) -> int:
        return sum(self.kills.values())


def _after_kill(run: Path, report: KillReport, best_epoch: int, stale: set[str]) -> int:
    """Check the run folder after a kill; return the checkpoint epoch (0: none yet).

    ``stale`` are the temp files that earlier kills left (not evidence of this kill).
    """
    ckdir = run / "checkpoint"
    temps = set(_temp_files(run)) - stale
    between_renames = (ckdir / "prev.json").is_file() and not (ckdir / "last.json").is_file()
    if any(t.startswith((".last.", ".weights.")) for t in temps) or between_renames:
        report.kills_in_write += 1
    epoch = 0
    if ckdir.is_dir() and any(ckdir.glob("*.json")):
        report.checkpoint_checks += 1
        report.failures += [f"corrupt checkpoint: {p}" for p in _pairs_intact(ckdir)]
        try:
            epoch = load_checkpoint(ckdir).epoch
        except CheckpointError as exc:
            report.failures.append(f"load_checkpoint failed after a kill: {exc}")
        if epoch < best_epoch:
            report.failures.append(f"checkpoint went back from epoch {best_epoch} to {epoch}")
    epochs = _metric_epochs(run)
    if isinstance(epochs, str):
        report.failures.append(f"metrics.jsonl: {epochs}")
    elif epochs != list(range(1, len(epochs) + 1)) or not epoch <= len(epochs) <= epoch + 1:
        report.failures.append(f"metrics.jsonl epochs {epochs} after a kill at checkpoint "
                               f"epoch {epoch}")
    return epoch


# ---------------------------------------------------------------------------- one process
def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_for_temp(proc: subprocess.Popen, ckdir: Path, count: int, stale: set[str]) -> None:
    """Return when the ``count``-th temp file of this process appears in ``ckdir``."""
    seen: set[str] = set()
    while proc.poll() is None:
        try:
            seen.update(name for name in os.listdir(ckdir) if name.endswith(".tmp"))
        except FileNotFoundError:
            pass
        if len(seen - stale) >= count:
            return
        time.sleep(0.0002)


def _wait_for_epoch_lines(proc: subprocess.Popen, lines: queue.Queue, count: int) -> None:
    seen = 0
    while seen < count and proc.poll() is None:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            continue
        if line is None:
            return
        seen += line.startswith("epoch ")


def _one_process(run: Path, settings: list[str], fresh: bool, kind: str | None,
                 rng: random.Random, log_file, stale: set[str]) -> bool:
    """Start ``cnnkit train``; kill it the ``kind`` way (None: let it finish). True if killed."""
    proc = subprocess.Popen(_command(run, settings, fresh), env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=log_file)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    if kind == "write":
        # Each checkpoint writes two temp files (tensors, then JSON): land in either, in one
        # of the first two checkpoints this process writes.
        _wait_for_temp(proc, run / "checkpoint", rng.randint(1, 4), stale)
    elif kind == "epoch":
        _wait_for_epoch_lines(proc, lines, rng.randint(1, 2))
        time.sleep(rng.uniform(0.0, 0.02))
    elif kind == "random":
        time.sleep(rng.uniform(0.5, 6.0))
    killed = False
    if kind is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        killed = True
    code = proc.wait()
    reader.join()
    if not killed and code != 0:
        raise RuntimeError(f"cnnkit train exited with {code}; see {log_file.name}")
    return killed


# ---------------------------------------------------------------------------- the harness
def _compare(run: Path, reference: Path, report: KillReport) -> None:
    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def all_runs(previous: bool | None, now: bool) -> bool:
        return now if previous is None else previous and now

    weights = same(load_file(str(run / "weights.safetensors")),
                   load_file(str(reference / "weights.safetensors")))
    ours, theirs = load_checkpoint(run / "checkpoint"), load_checkpoint(reference / "checkpoint")
    state = same(ours.prefixed("model."), theirs.prefixed("model.")) and \
        same(ours.prefixed("optim."), theirs.prefixed("optim."))
    report.weights_equal = all_runs(report.weights_equal, weights)
    report.checkpoint_equal = all_runs(report.checkpoint_equal, state)

    def values(folder: Path) -> list[tuple]:
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        return [(r["epoch"], *(r.get(k) for k in COMPARED_METRICS)) for r in records]

    report.metrics_equal = all_runs(report.metrics_equal, values(run) == values(reference))
    leftovers = [t for t in _temp_files(run) if t.startswith(".last.")]
    if leftovers:
        report.failures.append(f"temp files left in the checkpoint folder: {leftovers}")


def kill_resume(workdir: Path, *, epochs: int, kills: int, seed: int = 0,
                kinds: tuple[str, ...] = KILL_KINDS,
                weights: tuple[float, ...] = KIND_WEIGHTS) -> KillReport:
    """Train, kill and resume until ``kills`` kills landed and the run finished; compare.

    Args:
        workdir: an empty folder for the reference run, the killed runs and the stderr log.
        epochs: epochs of each training run (more epochs: more kills per run).
        kills: SIGKILLs to deliver in total (over as many complete runs as it takes).
        seed: seed of the kill schedule (not of the training).
        kinds, weights: the kill kinds to draw from and their probabilities.

    Returns:
        A :class:`KillReport`; ``failures`` is empty and every ``*_equal`` True on success.
    """
    start = time.perf_counter()
    rng = random.Random(seed)
    settings = train_args(epochs)
    reference = workdir / "reference"
    reference_run(reference, settings)
    report = KillReport()
    with open(workdir / "stderr.log", "w") as log_file:
        while report.total_kills < kills:
            run = workdir / f"killed-{report.runs_completed}"
            best_epoch, finished = 0, False
            while not finished:
                fresh = best_epoch == 0
                kind = rng.choices(kinds, weights)[0] if report.total_kills < kills else None
                stale = set(_temp_files(run))
                if _one_process(run, settings, fresh, kind, rng, log_file, stale):
                    report.kills[kind] += 1
                    best_epoch = max(best_epoch, _after_kill(run, report, best_epoch, stale))
                else:
                    finished = True
                report.resumes += not fresh
                report.fresh_restarts += fresh
            _compare(run, reference, report)
            report.runs_completed += 1
    report.seconds = time.perf_counter() - start
    return report


def format_report(report: KillReport) -> str:
    """The summary table printed by the bench."""
    rows = [
        ("complete runs", report.runs_completed),
        ("SIGKILLs delivered", report.total_kills),
        ("  at a checkpoint temp file (write)", report.kills["write"]),
        ("  just after an epoch line (epoch)", report.kills["epoch"]),
        ("  at a random time (random)", report.kills["random"]),
        ("kills that interrupted a write", report.kills_in_write),
        ("resumes (--resume)", report.resumes),
        ("fresh restarts (no checkpoint yet)", report.fresh_restarts),
        ("checkpoint folders verified", report.checkpoint_checks),
        ("failures (corrupt/lost/duplicated)", len(report.failures)),
        ("final weights bitwise equal", report.weights_equal),
        ("final checkpoint bitwise equal", report.checkpoint_equal),
        ("per-epoch metrics equal", report.metrics_equal),
        ("wall time (s)", f"{report.seconds:.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24, help="SIGKILLs to deliver (default 24)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cnnkit-kill-") as tmp:
        report = kill_resume(Path(tmp), epochs=args.epochs, kills=args.kills, seed=args.seed)
    print(format_report(report))
    for failure in report.failures:
        print("FAILURE:", failure)
    ok = not report.failures and report.weights_equal and report.checkpoint_equal \
        and report.metrics_equal
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
