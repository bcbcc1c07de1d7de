"""Truncated or bit-flipped checkpoints and weights are caught on load, naming the file.

A damaged ``last`` checkpoint falls back to ``prev`` (with a warning naming the damaged file);
damaged weights make ``load_run`` fail with a CheckpointError that names the file and offers
the run's last checkpoint (``cnnkit train --resume RUN`` rewrites the weights from it).
"""
from __future__ import annotations

import json
import logging
import random

import pytest
import torch
from safetensors.torch import load_file

from cnnkit.cli import main
from cnnkit.errors import CheckpointError
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import train
from cnnkit.train.run_folder import load_run

from reliability_helpers import flip_bit, truncate


def _header_length(path) -> int:
    """Bytes of a safetensors file before the tensor data (8-byte length + JSON header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def _damages(path, count: int, seed: int):
    """``count`` (description, damage function) pairs spread over header and data."""
    rng = random.Random(seed)
    size, header = path.stat().st_size, _header_length(path)
    out = [("empty", lambda p: truncate(p, 0)), ("8 bytes", lambda p: truncate(p, 8)),
           ("header only", lambda p: truncate(p, header)),
           ("last byte missing", lambda p: truncate(p, size - 1))]
    for _ in range(count):
        offset, bit = rng.randrange(size), rng.randrange(8)
        out.append((f"bit {bit} of byte {offset}", lambda p, o=offset, b=bit: flip_bit(p, o, b)))
    return out


def test_every_damage_to_the_last_checkpoint_falls_back_to_prev(small_run, caplog):
    folder = small_run / "checkpoint"
    tensors = folder / "last.safetensors"
    pristine = tensors.read_bytes()
    for what, damage in _damages(tensors, count=40, seed=1):
        tensors.write_bytes(pristine)
        damage(tensors)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cnnkit.train.checkpoint"):
            ckpt = load_checkpoint(folder)
        assert ckpt.epoch == 1, what  # prev, never the damaged last
        assert "last.json" in caplog.text and "previous checkpoint" in caplog.text, what


def test_damaged_last_json_falls_back_to_prev(small_run):
    folder = small_run / "checkpoint"
    meta = folder / "last.json"
    pristine = meta.read_text()
    for damaged in (pristine[: len(pristine) // 2], "", pristine.replace('"tensors_sha256"', '"x"'),
                    pristine.replace('"tensors_sha256": "', '"tensors_sha256": "0')):
        meta.write_text(damaged)
        assert load_checkpoint(folder).epoch == 1


def test_both_checkpoints_damaged_is_an_error_naming_both_files(small_run):
    folder = small_run / "checkpoint"
    flip_bit(folder / "last.safetensors", -1)
    truncate(folder / "prev.safetensors", 100)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder)
    assert "last.json" in str(err.value) and "prev.json" in str(err.value)


def test_damaged_weights_are_refused_naming_the_file_or_load_unchanged(small_run):
    """Never wrong weights: a damage is caught, or it hit bytes that do not change a tensor
    (padding spaces of the JSON header) and the loaded weights are the pristine ones."""
    weights = small_run / "weights.safetensors"
    pristine = weights.read_bytes()
    expected = load_run(small_run).model.state_dict()
    caught = 0
    for what, damage in _damages(weights, count=60, seed=2):
        weights.write_bytes(pristine)
        damage(weights)
        try:
            state = load_run(small_run).model.state_dict()
        except CheckpointError as err:
            assert "weights.safetensors" in str(err) and "corrupt" in str(err), what
            assert "cnnkit train --resume" in str(err), what
            caught += 1
            continue
        assert all(torch.equal(state[k], expected[k]) for k in expected), what
    assert caught >= 55  # 4 truncations + 60 flips: only a few can land in harmless bytes


def test_a_flipped_data_bit_is_caught_by_the_stored_digest(small_run):
    weights = small_run / "weights.safetensors"
    flip_bit(weights, _header_length(weights) + 5)  # inside the tensor data
    load_file(str(weights))  # safetensors alone cannot see it ...
    with pytest.raises(CheckpointError, match="do not match the SHA-256"):
        load_run(small_run)  # ... the digest does


def test_weights_without_a_digest_still_load(small_run):
    """Files written before the digest existed (or by other tools) stay loadable."""
    from safetensors.torch import save_file

    weights = small_run / "weights.safetensors"
    save_file(load_file(str(weights)), str(weights))
    assert load_run(small_run).input_shape == (1, 8, 8)


def test_resume_rewrites_damaged_weights_from_the_checkpoint(tmp_path, capsys):
    """The fix the error message offers works: the rewritten weights are the original ones."""
    run = tmp_path / "run"
    train(TrainConfig(epochs=1, out=str(run), device="cpu"), progress=False)
    weights = run / "weights.safetensors"
    original = {k: v.clone() for k, v in load_file(str(weights)).items()}  # not the mmap
    flip_bit(weights, -3)
    with pytest.raises(CheckpointError, match=f"cnnkit train --resume {run}"):
        load_run(run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    repaired = load_file(str(weights))
    assert all(torch.equal(original[k], repaired[k]) for k in original)
    assert [r["epoch"] for r in map(json.loads, (run / "metrics.jsonl").open())] == [1]


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    from cnnkit.train.run_folder import read_metrics, truncate_metrics

    records = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "metrics.jsonl").write_text(text + '{"epoch": 3, "lo')
    assert read_metrics(tmp_path) == records
    truncate_metrics(tmp_path, 2)  # what a resume from the epoch-2 checkpoint does
    assert (tmp_path / "metrics.jsonl").read_text() == text
