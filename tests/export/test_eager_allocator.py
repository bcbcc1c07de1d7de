"""The torch predict backend on a CPU keeps freed memory in the process, with the same answers.

glibc's malloc setting is process-wide and cannot be read back or undone, so each case runs in
a fresh Python process and reads ``cnnkit.train.allocator._applied`` (None: never asked).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Loads RUN as the case says, predicts 6 images; prints the switch's effect and the answers.
SCRIPT = textwrap.dedent("""
    import json, sys, torch
    import cnnkit
    from cnnkit.export import runtime
    from cnnkit.train import allocator
    run, how, keep = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    runtime.EAGER_KEEP_FREED_MEMORY = keep
    if how == "load":
        loaded = cnnkit.load(run)
    elif how == "trainer":  # what training does in its process, for comparison
        from cnnkit.train.trainer import Trainer
        Trainer(torch.nn.Linear(2, 2))
        print(json.dumps({"tuned": allocator._applied}))
        raise SystemExit
    elif how == "meta":
        from cnnkit.run.folder import LoadedModel
        meta = LoadedModel(torch.nn.Conv2d(3, 4, 3, device="meta"), ["a"], None, (3, 8, 8), {})
        runtime.use_backend(meta, "torch")
        print(json.dumps({"tuned": allocator._applied}))
        raise SystemExit
    else:  # auto with no cached export and export=False: the fall-back to torch
        loaded = runtime.use_backend(cnnkit.run.folder.load_run(run), "auto",
                                     cache_dir=run + "/.cache", export=False)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(1))
    print(json.dumps({"tuned": allocator._applied, "backend": loaded.backend,
                      "probs": loaded.predict_proba(x).tolist(), "labels": loaded.predict(x)}))
""")


@pytest.fixture(scope="module")
def run(run_dir):  # the export tests' run folder (conftest.py): 8x8 grayscale, 3 classes
    return str(run_dir)


def case(run: str, how: str, keep: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, run, how, str(int(keep))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_load_keeps_freed_memory_and_predicts_the_same_as_the_switch_off(run):
    kept, plain = case(run, "load", True), case(run, "load", False)
    assert kept["backend"] == plain["backend"] == "torch"
    assert kept["tuned"] is True  # glibc's thresholds raised (Linux CI)
    assert plain["tuned"] is None  # the switch off: malloc never touched
    assert kept["probs"] == plain["probs"]  # bit for bit: only where freed memory goes changed
    assert kept["labels"] == plain["labels"]
    assert len(kept["probs"]) == 6 and all(abs(sum(p) - 1) < 1e-5 for p in kept["probs"])


def test_the_fall_back_to_torch_keeps_freed_memory_too(run):
    got = case(run, "auto", True)
    assert got["backend"] == "torch" and got["tuned"] is True


def test_a_model_off_the_cpu_leaves_malloc_alone(run):
    assert case(run, "meta", True)["tuned"] is None


def test_the_trainer_tunes_malloc_as_the_torch_backend_does(run):
    assert case(run, "trainer", True)["tuned"] is True
