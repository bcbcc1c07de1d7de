"""cnnkit train: the model fits the data's classes, --stem for ResNets, --allow-label-gaps."""
from __future__ import annotations

import json

import numpy as np

from cnnkit.cli import main


def _npz(path, labels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(labels), 8, 8, 1), dtype=np.uint8)
    np.savez(path, x=images, y=np.asarray(labels))
    return path


def _train(*argv):
    return main(["train", "--epochs", "1", "--no-progress", "--no-tensorboard", *map(str, argv)])


def test_the_default_model_gets_one_output_per_class(tmp_path, capsys):
    data = _npz(tmp_path / "k12.npz", list(range(12)) * 5)
    assert _train("--data", data, "--out", tmp_path / "run") == 0
    arch = json.loads((tmp_path / "run" / "model.json").read_text())
    assert "fc(12)" in json.dumps(arch)


def test_a_spec_with_another_class_count_is_refused_with_the_fix(tmp_path, capsys):
    data = _npz(tmp_path / "k12.npz", list(range(12)) * 5)
    assert _train("--data", data, "--model", "conv(4,3) relu fc(10)", "--out",
                  tmp_path / "run") == 2
    assert ("the model ends in 10 outputs but the data has 12 classes; end the architecture "
            "string with fc(12)") in capsys.readouterr().err


def test_label_gaps_are_refused_unless_allowed(tmp_path, capsys):
    data = _npz(tmp_path / "gaps.npz", [0, 1, 2, 200] * 15)
    assert _train("--data", data, "--out", tmp_path / "refused") == 2
    err = capsys.readouterr().err
    assert err.count("gaps.npz[x]:") == 1 and "class 3 has no label" in err
    assert "allow_label_gaps=True to train a 201-class model" in err
    assert _train("--data", data, "--allow-label-gaps", "--out", tmp_path / "run") == 0
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert len(model["class_names"]) == 201


def test_stem_reaches_the_resnet_and_is_refused_elsewhere(tmp_path, capsys):
    assert _train("--data", "digits", "--model", "resnet18", "--input-size", "32", "--stem",
                  "imagenet", "--batch-size", "256", "--out", tmp_path / "run") == 0
    arch = json.loads((tmp_path / "run" / "model.json").read_text())["architecture"]
    assert arch["kwargs"]["stem"] == "imagenet"
    assert _train("--data", "digits", "--model", "lenet5", "--stem", "small", "--out",
                  tmp_path / "lenet") == 2
    assert "lenet5 has no choice of stem" in capsys.readouterr().err
    assert _train("--stem", "big", "--out", tmp_path / "big") == 2
    assert "stem must be one of auto, imagenet, small; got 'big'" in capsys.readouterr().err
