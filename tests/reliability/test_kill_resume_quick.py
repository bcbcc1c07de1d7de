"""A short version of ``python -m bench.reliability.kill_resume``: ``cnnkit train`` killed with
SIGKILL twice (once mid checkpoint write, once right after an epoch line), resumed each time,
finishing bitwise equal to an uninterrupted run, with intact checkpoints and an exact metrics
log after every kill."""
from __future__ import annotations

import signal
import sys

import pytest

from bench.reliability.kill_resume import format_report, kill_resume

# Five `cnnkit train` processes (about 4 s each alone, 60 s on a busy 2-core box): slow.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not hasattr(signal, "SIGKILL") or sys.platform == "win32",
                                 reason="needs POSIX SIGKILL")]


def test_two_kills_then_resume_give_the_uninterrupted_weights(tmp_path):
    report = kill_resume(tmp_path, epochs=4, kills=2, seed=3, kinds=("write", "epoch"),
                         weights=(0.5, 0.5))
    summary = format_report(report)
    assert report.total_kills == 2, summary
    assert not report.failures, summary
    assert report.weights_equal and report.checkpoint_equal and report.metrics_equal, summary
    assert report.checkpoint_checks >= 1, summary
