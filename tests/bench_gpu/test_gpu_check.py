"""bench/gpu_check.py: its CPU smoke run goes through every section and reports one row each."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("pytest -m cuda", "mnist-fast time to 99%", "cifar10-fast vs airbench94",
            "torch.compile", "DDP nccl, 1 GPU")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.gpu_check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _table_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in SECTIONS:
            rows[cells[0]] = cells
    return rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_without_cuda_it_skips_the_gpu_sections_and_exits_0():
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no CUDA device: GPU sections skipped"


def test_cpu_smoke_runs_every_section_and_prints_one_row_each():
    proc = _run("--cpu-smoke")
    assert proc.returncode == 0, proc.stderr
    rows = _table_rows(proc.stdout)
    assert list(rows) == list(SECTIONS), proc.stdout
    for name, (_, result, figure, target, seconds) in rows.items():
        assert result == "ok", f"{name}: {result} {figure}"
        assert target and float(seconds) > 0
    assert "skipped" in rows["pytest -m cuda"][2] or "passed" in rows["pytest -m cuda"][2]
    assert "recipe" in rows["cifar10-fast vs airbench94"][2]
    assert "bf16" in rows["cifar10-fast vs airbench94"][2]
    assert "fp16" in rows["cifar10-fast vs airbench94"][2]
    assert "compiled (eager)" in rows["torch.compile"][2]
    assert "gloo: DDP" in rows["DDP nccl, 1 GPU"][2]
