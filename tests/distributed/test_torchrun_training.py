"""Real 2-process training on the CPU (gloo) under torchrun, compared with one process.

Each test launches ``torchrun --standalone --nproc-per-node 2`` as a subprocess (about 10 s:
two Python interpreters import torch and join a gloo group) and trains the default small CNN
(no BatchNorm) on the built-in digits, then checks the result against one in-process run of the
same config: same global batch -> same weights within float tolerance.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnkit.cli import main
from cnnkit.train import run_folder as rf
from cnnkit.train.config import TrainConfig
from cnnkit.train.evaluation import evaluate_run
from cnnkit.train.pipeline import train

HERE = Path(__file__).resolve().parent
# Same global batch, same seed, CPU: only the order of float additions differs. That drift grows
# with the steps and with the CPU's kernels (single weights 1.4e-4 apart after 3 epochs on an AMD
# EPYC), so each tensor is compared as a whole: ||a - b|| / ||b||. A missed or repeated step moves
# the weights by orders of magnitude more than this bound.
WEIGHT_REL_DIFF = 1e-4
# BN's running statistics are per process (no SyncBN): the comparisons use a net without it.
NO_BN_MODEL = "conv(16,3,padding=same) relu conv(32,3,padding=same) relu maxpool(2) fc(64) relu fc(10)"


# Both tests start real 2-process torchrun jobs: run them one after the other on one xdist
# worker (`make test` uses --dist loadgroup) so their processes never compete on 2 cores.
pytestmark = pytest.mark.xdist_group("torchrun")


@pytest.fixture(autouse=True)
def _not_inside_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _one_process(tmp_path: Path, name: str, epochs: int) -> Path:
    config = TrainConfig(model=NO_BN_MODEL, epochs=epochs, batch_size=64, device="cpu",
                         precision="fp32", out=str(tmp_path / name))
    return train(config, progress=False).out


def _assert_same_weights(run_a: Path, run_b: Path) -> None:
    a, b = load_file(run_a / rf.WEIGHTS_FILE), load_file(run_b / rf.WEIGHTS_FILE)
    assert a.keys() == b.keys()
    for key in a:
        diff = float((a[key] - b[key]).norm() / b[key].norm().clamp_min(1e-12))
        assert diff < WEIGHT_REL_DIFF, f"{key}: relative difference {diff:.2e}"


def test_cli_nproc_2_trains_like_one_process_and_rank_0_alone_writes(tmp_path, capfd):
    # Two processes x (two accumulation micro-batches of 16) = the global batch of 64.
    rc = main(["train", "--nproc", "2", "--model", NO_BN_MODEL, "--epochs", "2", "--batch-size",
               "64", "--device", "cpu", "--precision", "fp32",
               "--accumulate-steps", "2", "--no-progress", "--out", str(tmp_path / "ddp")])
    captured = capfd.readouterr()
    assert rc == 0, captured.err
    assert captured.out.count("epoch 1/2") == 1 and captured.out.count("epoch 2/2") == 1
    ddp = tmp_path / "ddp"
    assert [m["epoch"] for m in rf.read_metrics(ddp)] == [1, 2]

    single = _one_process(tmp_path, "single", epochs=2)
    _assert_same_weights(ddp, single)
    ddp_metrics, single_metrics = rf.read_metrics(ddp), rf.read_metrics(single)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert ddp_metrics[-1][key] == pytest.approx(single_metrics[-1][key], abs=1e-4), key

    # The test metrics were all-reduced over both shards: they equal a 1-process evaluation
    # of the same weights on the whole test split.
    results = json.loads((ddp / rf.RESULTS_FILE).read_text())
    report = evaluate_run(rf.load_run(ddp), "digits", split="test")
    assert results["test_confusion_matrix"] == report.confusion.tolist()
    assert sum(map(sum, results["test_confusion_matrix"])) == report.num_images == 359
    assert results["test_accuracy"] == pytest.approx(report.accuracy, abs=1e-6)


def test_killed_rank_stops_the_job_and_its_checkpoint_resumes_in_one_process(tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", str(HERE / "torchrun_worker.py"), "--out", str(out),
               "--epochs", "3", "--kill-epoch", "3"]
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 60, f"the job took {elapsed:.0f} s to stop after a rank was killed"
    assert "SIGKILL" in proc.stderr and "ChildFailedError" in proc.stderr, proc.stderr[-2000:]

    # Rank 0 wrote epochs 1-2 before rank 1 died; one process finishes epoch 3.
    assert [m["epoch"] for m in rf.read_metrics(out)] == [1, 2]
    resumed = train(resume=out, progress=False)
    assert [m["epoch"] for m in rf.read_metrics(out)] == [1, 2, 3]
    assert resumed.results["epochs"] == 3
    _assert_same_weights(out, _one_process(tmp_path, "single", epochs=3))


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_cli_nproc_2_trains_a_dense_task_and_reduces_its_metrics(tmp_path, capfd, task):
    # Segmentation sums its confusion matrix over the ranks; detection gathers every rank's
    # detections for pycocotools; the detector trains every backbone layer (DDP needs that).
    from cnnkit.data.scenes import write_scenes
    from cnnkit.run.evaluate import evaluate_task_run

    data = write_scenes(f"mnist-{task}", tmp_path / "data", sizes={"train": 16, "val": 6,
                                                                  "test": 6}, source="builtin")
    rc = main(["train", "--nproc", "2", "--data", str(data), "--epochs", "1", "--batch-size",
               "8", "--device", "cpu", "--precision", "fp32", "--no-progress",
               "--out", str(tmp_path / "ddp")])
    captured = capfd.readouterr()
    assert rc == 0, captured.err
    assert captured.out.count("epoch 1/1") == 1
    results = json.loads((tmp_path / "ddp" / rf.RESULTS_FILE).read_text())
    report = evaluate_task_run(rf.load_run(tmp_path / "ddp"), str(data), split="test")
    key = "miou" if task == "segment" else "map50"
    assert results[f"test_{key}"] == pytest.approx(report.metrics[key], abs=1e-6)
    assert results["test_loss"] == pytest.approx(report.metrics["loss"], rel=1e-4)
