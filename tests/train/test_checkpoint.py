"""Checkpoint round trips, corruption detection, and process kills at every step of a write."""
import json
import os
import signal

import pytest
import torch
from torch import nn

from cnnkit.errors import CheckpointError
from cnnkit.train import checkpoint as ckpt_mod
from cnnkit.train.checkpoint import load_checkpoint, restore_checkpoint, save_checkpoint

from train_helpers import small_cnn


def _trained(seed: int):
    torch.manual_seed(seed)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.9 ** s)
    for _ in range(3):
        model(torch.randn(4, 1, 8, 8)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model, opt, sched


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_restores_model_optimizer_scheduler_and_rng(tmp_path):
    model, opt, sched = _trained(0)
    torch.manual_seed(123)
    save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=3,
                    global_step=9, extra={"note": "x"})
    expected_draw = torch.rand(5)

    fresh, fresh_opt, fresh_sched = _trained(1)
    ckpt = load_checkpoint(tmp_path)
    restore_checkpoint(ckpt, model=fresh, optimizer=fresh_opt, scheduler=fresh_sched)
    assert (ckpt.epoch, ckpt.global_step, ckpt.extra) == (3, 9, {"note": "x"})
    assert _same_state(model, fresh)
    for p, q in zip(opt.state.values(), fresh_opt.state.values()):
        assert all(torch.equal(p[k], q[k]) for k in p)
    assert fresh_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert isinstance(fresh_opt.param_groups[0]["betas"], tuple)
    assert fresh_sched.last_epoch == sched.last_epoch
    assert torch.equal(torch.rand(5), expected_draw)  # the RNG continues where it was saved


def test_files_are_safetensors_and_json_only(tmp_path):
    model, opt, _ = _trained(0)
    save_checkpoint(tmp_path, model=model, optimizer=opt, epoch=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["epoch"] == 1 and len(meta["tensors_sha256"]) == 64


def test_corrupt_last_falls_back_to_prev_then_fails_with_the_file_name(tmp_path):
    model, opt, _ = _trained(0)
    save_checkpoint(tmp_path, model=model, optimizer=opt, epoch=1)
    with torch.no_grad():
        model[0].bias += 1.0
    save_checkpoint(tmp_path, model=model, optimizer=opt, epoch=2)
    data = bytearray((tmp_path / "last.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "last.safetensors").write_bytes(bytes(data))
    assert load_checkpoint(tmp_path).epoch == 1
    (tmp_path / "prev.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"last\.json.*no \.safetensors file .* matches"):
        load_checkpoint(tmp_path)


def test_missing_folder_and_wrong_model_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_checkpoint(tmp_path / "empty")
    model, _, _ = _trained(0)
    save_checkpoint(tmp_path / "c", model=model, epoch=1)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        restore_checkpoint(load_checkpoint(tmp_path / "c"), model=small_cnn(classes=7))


def _kill_at(folder, model_new, kill_on_replace: int | None, kill_in_write: bool) -> None:
    """Fork a child that saves a checkpoint and SIGKILLs itself at a chosen moment."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            calls = {"n": 0}
            real_replace = os.replace

            def dying_replace(src, dst):
                calls["n"] += 1
                if calls["n"] == kill_on_replace:
                    os.kill(os.getpid(), signal.SIGKILL)
                real_replace(src, dst)

            def dying_save(tensors, path, metadata=None):
                with open(path, "wb") as f:  # half a file, then death
                    f.write(b"\x00" * 1000)
                    f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            os.replace = dying_replace
            if kill_in_write:
                ckpt_mod.save_file = dying_save
            save_checkpoint(folder, model=model_new, epoch=3)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) == (kill_in_write or kill_on_replace is not None)


@pytest.mark.parametrize("kill_on_replace, kill_in_write", [
    (None, True),  # during the write of the tensors' temp file
    (1, False),    # before last.safetensors -> prev.safetensors
    (2, False),    # between the two renames of the old pair
    (3, False),    # before the temp tensors become last.safetensors
    (4, False),    # before the new last.json is in place
])
def test_a_kill_at_any_step_leaves_a_loadable_checkpoint(tmp_path, kill_on_replace,
                                                          kill_in_write):
    torch.manual_seed(0)
    epoch1, epoch2, epoch3 = small_cnn(), small_cnn(), small_cnn()
    save_checkpoint(tmp_path, model=epoch1, epoch=1)
    save_checkpoint(tmp_path, model=epoch2, epoch=2)
    _kill_at(tmp_path, epoch3, kill_on_replace, kill_in_write)
    ckpt = load_checkpoint(tmp_path)
    expected = {1: epoch1, 2: epoch2, 3: epoch3}[ckpt.epoch]
    assert ckpt.epoch in (1, 2)  # the interrupted epoch-3 write never counts
    restored = small_cnn()
    restore_checkpoint(ckpt, model=restored, rng=False)
    assert _same_state(restored, expected)
    # and the next save works normally
    save_checkpoint(tmp_path, model=epoch3, epoch=3)
    assert load_checkpoint(tmp_path).epoch == 3
