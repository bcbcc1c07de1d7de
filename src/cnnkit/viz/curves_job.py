"""Draw a run's ``curves.png`` in a background process, so ``cnnkit train`` can exit first.

Importing matplotlib and drawing the three panels takes ~0.9 s on a 2-core CPU
(bench/RESULTS.md, #19 item 1): a user waiting for ``cnnkit train`` need not wait for it.
:func:`start` runs ``python -m cnnkit.viz.curves_job METRICS PNG`` in a new session; the child
imports matplotlib and this package only (no torch) and writes the PNG atomically, so a reader
sees either no file or the whole picture. Its errors go to ``curves.log`` beside the PNG, which
the child removes when the picture is written.

While the child draws it holds a lock on ``curves.log`` (an ``flock`` taken by :func:`start`
before the child exists, kept by the child's stderr until it exits). :func:`wait_for` waits on
that lock: code that removes or reuses a run folder right after ``cnnkit train`` (a benchmark,
``--overwrite`` into the same folder) calls it first, so no picture lands in the folder after.

The picture is the one :func:`cnnkit.viz.curves.plot_training_curves` draws in-process
(``cnnkit train --curves now``); tests/viz/test_curves_job.py checks they are the same pixels.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no flock, wait_for() cannot wait (the child still draws)
    fcntl = None

LOG_NAME = "curves.log"

# The children started by this process: kept so their Popen objects are not collected while
# they run, and so callers (tests, notebooks) can wait for the pictures with wait_all().
_running: list[subprocess.Popen] = []


def start(metrics: str | os.PathLike, png: str | os.PathLike) -> subprocess.Popen:
    """Start drawing ``png`` from the metrics.jsonl ``metrics`` in a background process.

    The child outlives this process (new session, no inherited stdin/stdout); its stderr goes
    to ``curves.log`` beside ``png``, removed again when the picture is written.

    Returns:
        The child's Popen (``.wait()`` for the picture; exit code 0: written, 1: see the log).

    Example:
        >>> job = start("runs/mnist/metrics.jsonl", "runs/mnist/curves.png")  # doctest: +SKIP
        >>> job.wait()  # doctest: +SKIP
        0
    """
    png = Path(png)
    with open(png.with_name(LOG_NAME), "wb") as log:
        if fcntl is not None:
            # Locked before the child exists, so there is no moment a waiter could miss it; the
            # lock belongs to the open file, which the child's stderr keeps until it exits.
            try:
                fcntl.flock(log, fcntl.LOCK_EX)
            except OSError:  # a file system without locks: the picture is drawn all the same
                pass
        child = subprocess.Popen(
            [sys.executable, "-m", "cnnkit.viz.curves_job", os.fspath(metrics), os.fspath(png)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True)  # Ctrl-C in the terminal does not kill the picture
    _running.append(child)
    return child


def wait_for(run: str | os.PathLike) -> None:
    """Return once no background process is drawing into the folder ``run`` (at once if none).

    Works across processes (the one that called :func:`start` may have exited): it waits on the
    lock the drawing child holds on ``RUN/curves.log``. A finished or failed child holds none.

    Example:
        >>> wait_for("runs/mnist")  # doctest: +SKIP
        >>> shutil.rmtree("runs/mnist")  # no picture is written into it after  # doctest: +SKIP
    """
    try:
        log = open(Path(run) / LOG_NAME, "rb")
    except (FileNotFoundError, NotADirectoryError):
        return  # no log: no child started here, or its picture is written
    with log:
        if fcntl is not None:
            try:
                fcntl.flock(log, fcntl.LOCK_SH)  # blocks while the child holds LOCK_EX
            except OSError:  # a file system without locks: nothing to wait on
                pass


def wait_all(timeout: float | None = None) -> list[int]:
    """Wait for every child :func:`start` began in this process; their exit codes."""
    codes = [child.wait(timeout) for child in _running]
    _running.clear()
    return codes


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnkit.viz.curves_job METRICS PNG``: 0 written, 1 failed (message on stderr)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m cnnkit.viz.curves_job METRICS.jsonl OUT.png", file=sys.stderr)
        return 2
    metrics, png = Path(args[0]), Path(args[1])
    # import cost: matplotlib ~0.5 s; start() (in the parent) must not pay it
    from cnnkit.viz.curves import plot_training_curves, read_metrics

    try:
        records = read_metrics(metrics)
        if records:
            plot_training_curves(records, path=png)
    except (OSError, ValueError) as exc:  # DataError is a ValueError
        print(f"could not draw {png}: {exc}", file=sys.stderr)
        return 1
    png.with_name(LOG_NAME).unlink(missing_ok=True)  # written: nothing to report
    return 0


if __name__ == "__main__":
    sys.exit(main())
