"""curves.png drawn in a background process: the same pixels as in-process, errors in a log."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkit import run as rf
from cnnkit.cli import main as cli_main
from cnnkit.train import pipeline
from cnnkit.train.pipeline import train, write_curves
from cnnkit.train.config import TrainConfig
from cnnkit.viz import curves_job, plot_training_curves

RECORDS = [
    {"epoch": 1, "loss": 2.0, "accuracy": 0.3, "val_loss": 2.1, "val_accuracy": 0.25, "lr": 0.1},
    {"epoch": 2, "loss": 1.2, "accuracy": 0.6, "val_loss": 1.4, "val_accuracy": 0.55, "lr": 0.05},
]


def _metrics(folder):
    path = folder / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def test_the_background_picture_is_the_in_process_picture(tmp_path, check_png):
    metrics = _metrics(tmp_path)
    plot_training_curves(metrics, path=tmp_path / "here.png")
    job = curves_job.start(metrics, tmp_path / "curves.png")
    assert job.wait(timeout=120) == 0
    check_png(tmp_path / "curves.png")
    assert np.array_equal(_pixels(tmp_path / "curves.png"), _pixels(tmp_path / "here.png"))
    assert not (tmp_path / curves_job.LOG_NAME).exists()  # written: no log left behind
    assert not list(tmp_path.glob("*.tmp"))


def test_the_child_does_not_import_torch(tmp_path):
    # The point of the child is to start fast: matplotlib yes, torch (~1 s) no.
    metrics = _metrics(tmp_path)
    code = ("import sys, runpy; sys.argv = ['x', sys.argv[1], sys.argv[2]]\n"
            "from cnnkit.viz import curves_job\n"
            "assert curves_job.main() == 0\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(metrics), str(tmp_path / "c.png")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False" and (tmp_path / "c.png").is_file()


def test_a_bad_metrics_file_exits_1_and_says_why_in_the_log(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"loss": 1}\n{oops\n')
    job = curves_job.start(tmp_path / "metrics.jsonl", tmp_path / "curves.png")
    assert job.wait(timeout=120) == 1
    log = (tmp_path / curves_job.LOG_NAME).read_text()
    assert "could not draw" in log and "metrics.jsonl:2: not valid JSON" in log
    assert "Traceback" not in log and not (tmp_path / "curves.png").exists()


def test_usage_is_exit_2(capsys):
    assert curves_job.main(["only-one"]) == 2
    assert "usage: python -m cnnkit.viz.curves_job" in capsys.readouterr().err


def test_wait_all_waits_for_every_child_and_forgets_them(tmp_path):
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        curves_job.start(_metrics(folder), folder / "curves.png")
    assert curves_job.wait_all(timeout=120) == [0, 0]
    assert (tmp_path / "a" / "curves.png").is_file() and (tmp_path / "b" / "curves.png").is_file()
    assert curves_job.wait_all() == []


def test_unknown_when_is_a_clear_error_before_any_training(tmp_path):
    _metrics(tmp_path)
    with pytest.raises(ValueError, match=r"curves must be one of now, background, got 'later'"):
        write_curves(tmp_path, when="later")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"curves must be one of now, background, got 'soon'"):
        train(TrainConfig(data="digits", epochs=1, device="cpu", out=str(out)), progress=False,
              curves="soon")
    assert not out.exists()  # refused before a run folder was made


def test_cnnkit_train_draws_curves_in_the_background_or_now(tmp_path, capsys):
    now = tmp_path / "now"
    assert cli_main(["train", "--data", "digits", "--epochs", "1", "--device", "cpu",
                     "--out", str(now), "--no-progress", "--curves", "now"]) == 0
    assert (now / "curves.png").is_file()  # drawn before the command returned
    assert curves_job.wait_all() == []  # and no child was started

    later = tmp_path / "later"
    assert cli_main(["train", "--data", "digits", "--epochs", "1", "--device", "cpu",
                     "--out", str(later), "--no-progress"]) == 0
    assert curves_job.wait_all(timeout=120) == [0]  # the default: one background child
    assert (later / "curves.png").is_file() and not (later / curves_job.LOG_NAME).exists()
    assert np.array_equal(_pixels(later / "curves.png"), _pixels(now / "curves.png"))  # one seed


def test_an_unknown_curves_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["train", "--curves", "never"])
    assert stop.value.code == 2
    assert "invalid choice: 'never'" in capsys.readouterr().err


def test_wait_for_returns_once_the_drawing_child_has_finished(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    job = curves_job.start(_metrics(tmp_path), tmp_path / "curves.png")
    # start() has returned and closed its own handle: the child (still importing matplotlib)
    # holds the lock, so a waiter that will not block is refused
    with open(tmp_path / curves_job.LOG_NAME, "rb") as log, pytest.raises(BlockingIOError):
        fcntl.flock(log, fcntl.LOCK_SH | fcntl.LOCK_NB)
    curves_job.wait_for(tmp_path)
    # the picture is written (the child may still be shutting down: its exit code comes after)
    assert (tmp_path / "curves.png").is_file() and not (tmp_path / curves_job.LOG_NAME).exists()
    assert job.wait(timeout=120) == 0 and curves_job.wait_all() == [0]


def test_wait_for_works_from_another_process(tmp_path):
    # The case of a benchmark or a script: `cnnkit train` has exited, its child draws on.
    job = curves_job.start(_metrics(tmp_path), tmp_path / "curves.png")
    code = ("import sys; from pathlib import Path; from cnnkit.viz import curves_job\n"
            "curves_job.wait_for(sys.argv[1]); print((Path(sys.argv[1]) / 'curves.png').is_file())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    assert curves_job.wait_all() == [0]


def test_wait_for_does_not_wait_without_a_drawing_child(tmp_path):
    curves_job.wait_for(tmp_path)  # no log: nothing started here
    curves_job.wait_for(tmp_path / "missing")  # no folder
    (tmp_path / "metrics.jsonl").write_text("{oops\n")
    job = curves_job.start(tmp_path / "metrics.jsonl", tmp_path / "curves.png")
    assert curves_job.wait_all(timeout=120) == [1]
    assert (tmp_path / curves_job.LOG_NAME).is_file()  # a failed child leaves its log ...
    curves_job.wait_for(tmp_path)  # ... and no lock
    assert job.poll() == 1


def test_a_new_run_in_the_folder_waits_for_the_old_runs_picture(tmp_path):
    # `cnnkit train --overwrite` (or --resume) into a folder whose last picture is still being
    # drawn: the old picture lands before the new run starts, never over its files later.
    (tmp_path / rf.CONFIG_FILE).write_text("{}")
    job = curves_job.start(_metrics(tmp_path), tmp_path / "curves.png")
    out = pipeline._prepare_out(TrainConfig(data="digits", out=str(tmp_path)), resume=False,
                                overwrite=True)
    assert out == tmp_path and (tmp_path / "curves.png").is_file()
    assert curves_job.wait_all(timeout=120) == [0]
