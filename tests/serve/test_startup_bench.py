"""bench/startup.py end to end on a tiny run: fresh processes, /health polled, a ratio per row."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("onnxruntime")

from bench import startup  # noqa: E402


def test_startup_bench_times_every_command_against_import_torch(run_dir, capsys):
    run = run_dir  # tests/serve/conftest.py: a small classifier run with random weights
    startup.main(["--repeats", "1", "--run", str(run)])
    out = capsys.readouterr().out
    assert len(list((run / ".cache").glob("onnx-*.onnx"))) == 1  # the warm-up exported once
    rows = {m.group(1).strip(): [c.strip() for c in m.group(2).split("|")]
            for m in re.finditer(r"^\| ((?:python|cnnkit)[^|]*)\|(.*)\|$", out, re.M)}
    assert list(rows) == ["python -c 'import torch'", "cnnkit --help", "cnnkit models",
                          "cnnkit serve (auto, cached export)", "cnnkit serve (--backend torch)"]
    floor = float(rows["python -c 'import torch'"][0])
    for name, cells in rows.items():
        median, low, high = (float(c) for c in cells[:3])
        assert 0 < low <= median <= high
        ratio = float(cells[3].rstrip("x"))  # from the unrounded seconds: rounding may differ
        assert ratio == pytest.approx(median / floor, abs=0.011)
        target = startup.TARGETS.get(name)
        if target is None:
            assert cells[4] == ""
        elif abs(ratio - target) > 0.011:
            assert cells[4] == f"<= {target}x {'met' if ratio <= target else 'missed'}"


def test_a_serve_that_cannot_start_is_an_error_with_its_message(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="cnnkit serve exited 2: .*"):
        startup.time_serve_ready(tmp_path / "empty", "torch")
