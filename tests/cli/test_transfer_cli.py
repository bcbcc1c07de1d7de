"""cnnkit finetune and cnnkit embed on a tiny generated image folder."""
import json

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.cli import main
from cnnkit.train import TrainConfig
from cnnkit.transfer_learning import FineTuneSettings, finetune

SPEC = "conv(8,3,padding=same) relu maxpool(2) conv(8,3,padding=same) relu flatten fc(16) relu fc(10)"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, colour_squares):
    """3 classes x 10 RGB 12x12 PNGs: red, green, blue squares with noise."""
    return colour_squares(tmp_path_factory.mktemp("imgs") / "data", size=12,
                          per_class=10)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "run"
    assert main(["train", "--data", "digits", "--model", SPEC, "--epochs", "1", "--device", "cpu",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_finetune_writes_a_run_that_loads_and_evaluates(pretrained, folder, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", str(pretrained), "--data", str(folder), "--epochs", "2",
                 "--head-epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "loaded 8 of 8 model tensors from" in text
    assert f"run folder: {out}" in text
    record = json.loads((out / "finetune.json").read_text())
    assert record["freeze"] == "none" and record["load_report"]["missing"] == []
    loaded = cnnkit.load(out)
    assert loaded.class_names == ["blue", "green", "red"] and loaded.input_shape == (3, 8, 8)
    assert loaded.model(torch.zeros(1, 3, 8, 8)).shape == (1, 3)
    assert main(["evaluate", str(out), "--split", "val"]) == 0
    # the gray digits filters were summed over RGB: conv weights changed by the adaptation only
    source = cnnkit.load(pretrained).model
    assert loaded.model[0].weight.shape == (8, 3, 3, 3) and source[0].weight.shape == (8, 1, 3, 3)


def test_frozen_backbone_keeps_the_pretrained_layers(pretrained, folder, tmp_path):
    out = tmp_path / "frozen"
    assert main(["finetune", str(pretrained), "--data", str(folder), "--epochs", "2",
                 "--freeze", "all-but-head", "--batch-size", "8", "--device", "cpu",
                 "--out", str(out), "--no-progress"]) == 0
    source = cnnkit.load(pretrained).model
    tuned = cnnkit.load(out).model
    assert torch.equal(tuned[3].weight, source[3].weight)  # second conv: same channels, frozen
    assert torch.equal(tuned[0].weight, source[0].weight.repeat(1, 3, 1, 1) / 3)


def test_embed_data_and_images(pretrained, folder, tmp_path, capsys):
    npz = tmp_path / "f.npz"
    assert main(["embed", str(pretrained), "--data", str(folder), "--out", str(npz)]) == 0
    with np.load(npz) as data:
        assert data["features"].shape == (30, 16) and data["labels"].shape == (30,)
        assert list(data["class_names"]) == ["blue", "green", "red"]
    npz2 = tmp_path / "g.npz"
    assert main(["embed", str(pretrained), "--images", str(folder / "red"), "--out",
                 str(npz2)]) == 0
    with np.load(npz2) as data:
        assert data["features"].shape == (10, 16) and len(data["files"]) == 10
    assert "10 images -> features 16-d" in capsys.readouterr().out


def test_finetune_resume_continues_an_interrupted_run(interrupt_at, pretrained, folder, tmp_path,
                                                      capsys):
    out = tmp_path / "ft"
    config = TrainConfig(data=str(folder), epochs=3, batch_size=8, input_size=8,
                         precision="fp32", device="cpu", out=str(out))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in epoch 3, after the unfreezing
        finetune(pretrained, config, settings=FineTuneSettings(head_epochs=1),
                 callbacks=[interrupt_at(3)], progress=False)
    assert main(["finetune", "--resume", str(out), "--epochs", "4"]) == 2
    assert "--resume takes its settings from" in capsys.readouterr().err
    assert main(["finetune", "--resume", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "epoch 3/3" in text and "epoch 2/3" not in text and f"run folder: {out}" in text
    assert cnnkit.load(out).model(torch.zeros(1, 3, 8, 8)).shape == (1, 3)


@pytest.mark.parametrize("argv, message", [
    (["finetune", "--data", "digits"], "needs RUN_OR_WEIGHTS (or --resume RUN"),
    (["finetune", "/no/such.pth", "--data", "digits", "--model", "lenet5"], "do not exist"),
    (["finetune", "{run}", "--data", "digits", "--freeze", "some"], "freeze must be one of"),
    (["finetune", "{run}", "--data", "digits", "--freeze", "up-to:nope", "--epochs", "1",
      "--device", "cpu", "--out", "{tmp}/x"], "names no layer group"),
    (["embed", "{run}", "--data", "digits", "--out", "{tmp}/f.txt"], "must end in .npz"),
])
def test_bad_input_exits_2(pretrained, tmp_path, argv, message, capsys):
    argv = [a.format(run=pretrained, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
