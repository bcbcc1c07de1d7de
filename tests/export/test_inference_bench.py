"""bench/inference.py runs end to end on a tiny setting: both runtimes, every requested batch."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("onnxruntime")

from bench import inference  # noqa: E402


def test_inference_bench_prints_one_row_per_model_and_batch(capsys):
    inference.main(["--only", "lenet5,detect", "--batches", "1,4", "--repeats", "1",
                    "--seconds", "0.01"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\| (lenet5|detect) ", line)]
    got = [tuple(c.strip() for c in r.strip("|").split("|")[:2]) for r in rows]
    assert got == [("lenet5", "1"), ("lenet5", "4"), ("detect", "1"), ("detect", "4")], out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        eager, ort, ratio = float(cells[2]), float(cells[3]), float(cells[4])
        ort_1, predict, share, switched_off = (float(c) for c in cells[5:9])
        assert eager > 0 and ort > 0 and ort_1 > 0 and predict > 0 and switched_off > 0
        assert ratio == pytest.approx(ort / eager, rel=0.02, abs=0.01)
        assert share == pytest.approx(predict / max(eager, ort, ort_1), rel=0.02, abs=0.01)
        if cells[1] == "1":  # single-image latency p50 <= p99, for all four runtimes
            for cell in cells[9:13]:
                p50, p99 = (float(v) for v in cell.split(" / "))
                assert 0 < p50 <= p99
        else:
            assert cells[9:13] == [""] * 4
        assert (cells[13] != "") == (cells[0] == "detect")  # NMS time only for detection
    assert "lenet5: cnnkit predict runs single images on" in out


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'vgg99'"):
        inference.build("vgg99")


def test_inference_layout_bench_times_both_layouts_with_the_same_outputs(capsys):
    from bench import inference_layout

    inference_layout.main(["--only", "lenet5,segment", "--batches", "1,3", "--repeats", "1"])
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if re.match(r"\| (lenet5|segment) ", line)]
    assert [tuple(r[:2]) for r in rows] == [("lenet5", "1"), ("lenet5", "3"), ("segment", "1"),
                                            ("segment", "3")], out
    for row in rows:
        nchw, nhwc, ratio, difference = (float(c) for c in row[2:6])
        assert nchw > 0 and nhwc > 0
        assert ratio == pytest.approx(nhwc / nchw, rel=0.02, abs=0.01)
        assert difference < 1e-3  # the same network in another memory layout


def test_eager_allocator_bench_compares_fresh_processes_with_the_same_answers(capsys):
    from bench import eager_allocator

    eager_allocator.main(["--only", "lenet5", "--batches", "1,3", "--repeats", "1",
                          "--seconds", "0.01"])
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if re.match(r"\| lenet5 ", line)]
    assert [tuple(r[:2]) for r in rows] == [("lenet5", "1"), ("lenet5", "3")], out
    for row in rows:
        plain, kept, ratio, plain_faults, kept_faults = (float(c) for c in row[2:7])
        assert plain > 0 and kept > 0 and plain_faults >= 0 and kept_faults >= 0
        assert ratio == pytest.approx(kept / plain, rel=0.02, abs=0.01)
        assert row[7] == "yes"  # where freed memory goes does not change an answer
    assert "did not all tune malloc" not in out


def test_eager_allocator_worker_sets_the_switch_it_is_given(monkeypatch):
    from bench import eager_allocator
    from cnnkit.export import runtime

    monkeypatch.setattr(runtime, "EAGER_KEEP_FREED_MEMORY", True)  # restored afterwards
    got = eager_allocator.run_worker("lenet5", False, [2], seconds=0.0)
    assert runtime.EAGER_KEEP_FREED_MEMORY is False  # what a plain worker process runs with
    assert set(got) == {"tuned", "2"} and got["2"]["images_per_s"] > 0
    assert len(got["2"]["digest"]) == 64
