"""bench/default_path.py on the real MNIST files: three fresh ``cnnkit train`` processes, a row each."""
from __future__ import annotations

import re

import pytest

from bench import default_path


def test_default_path_bench_compares_the_three_commands(mnist_dir, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_DATA", str(mnist_dir.parent))
    default_path.main(["--repeats", "1", "--epochs", "1"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (cnnkit train [^|]*?)\s*\| (\d+)\s*\| ([\d.]+)x\s*\| ([\d.]+)\s*\| (.*)\|$",
                      out, re.M)
    assert [r[0] for r in rows] == ["cnnkit train --data mnist", "cnnkit train --recipe mnist-fast",
                                    "cnnkit train --data mnist --no-recipe"]
    speeds = {r[0]: int(r[1]) for r in rows}
    for command, speed, ratio, accuracy, first in rows:
        assert int(speed) > 0
        assert float(ratio) == pytest.approx(int(speed) / speeds[rows[1][0]], abs=0.01)
        assert 90 < float(accuracy) <= 100  # one epoch of MNIST
    # one epoch is mnist-fast's whole recipe: its promise, every seed >= 98.9 % (#19 item 1)
    assert float(rows[0][3]) >= 98.9 and float(rows[1][3]) >= 98.9, rows
    assert rows[0][4].startswith("recipe mnist-fast: the tuned settings for --data mnist")
