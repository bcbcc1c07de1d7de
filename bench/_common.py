"""Shared helpers of the speed benchmarks: data, A/B alternation, medians, tables, machine facts.

Every speed benchmark runs its contenders *alternately* (A, B, C, A, B, C, ...) in one process,
so that load from other jobs on a shared machine hits all of them alike, and reports the median
of the repeats. Ratios between contenders measured this way are what the results quote.
"""
from __future__ import annotations

import datetime
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from cnnkit.data.dataset import ImageData
from cnnkit.data.idx import find_idx_pair, load_idx
from cnnkit.viz import curves_job

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CNNKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
MNIST = SHARED_DATA / "mnist"


def load_mnist(folder: Path = MNIST) -> tuple[ImageData, ImageData]:
    """MNIST's train (60000) and test (10000) splits as uint8 ``(N, 1, 28, 28)`` tensors.

    Raises:
        FileNotFoundError / DataError: the IDX files are not in ``folder``.
    """
    train = load_idx(*find_idx_pair(folder, "train"))
    test = load_idx(*find_idx_pair(folder, "test"))
    return train, test


def alternate(contenders: dict[str, Callable[[int], dict]], repeats: int) -> dict[str, list[dict]]:
    """Run each contender ``repeats`` times, interleaved; ``fn(repeat)`` returns its measurements.

    Returns:
        contender name -> one result dict per repeat (in order).
    """
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for repeat in range(repeats):
        for name, fn in contenders.items():
            results[name].append(fn(repeat))
            shown = ", ".join(f"{k} {v:.4g}" for k, v in results[name][-1].items())
            print(f"  round {repeat + 1}/{repeats} {name}: {shown}", flush=True)
    return results


def median_of(results: list[dict], key: str) -> float:
    """The median of ``key`` over the repeats of one contender."""
    return statistics.median(r[key] for r in results)


def mean_std_percent(values: list[float]) -> str:
    """Accuracies (fractions) as ``"mean ± std"`` in percent, the std over seeds with n − 1."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """``(seconds, fn())`` by the wall clock."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table (so it pastes into bench/results unchanged)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def matmul_peak_gflops(n: int = 2048, dtype: torch.dtype = torch.float32,
                       repeats: int = 5) -> float:
    """The best GFLOP/s of an ``n``×``n`` ``dtype`` matmul on this machine's CPU threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_note() -> str:
    """One line naming the machine, the thread count and the library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{datetime.date.today()} · {cpu}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()})")


def cnnkit_argv() -> list[str]:
    """The command that starts ``cnnkit`` as a user does: this venv's console script."""
    script = Path(sys.executable).with_name("cnnkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cnnkit.cli"]


@contextmanager
def run_folders(prefix: str = "cnnkit-bench-") -> Iterator[str]:
    """A temporary folder for ``cnnkit train`` runs, removed only once their pictures are drawn.

    ``cnnkit train`` exits before its background process has written ``curves.png``
    (``cnnkit.viz.curves_job``); removing the folder at once races that process (``Directory
    not empty``, seen in CI). On exit this waits for every run's drawing, then removes it.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            yield tmp
        finally:
            for log in Path(tmp).rglob(curves_job.LOG_NAME):
                curves_job.wait_for(log.parent)
