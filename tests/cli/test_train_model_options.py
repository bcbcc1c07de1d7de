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


def _folder_64(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


ISSUE_SPEC = "conv(16,3) relu maxpool(2) conv(32,3) relu maxpool(2) fc(2)"


def test_sizes_that_do_not_divide_floor_with_one_warning_per_layer(tmp_path, capsys):
    """#18 item 1: 29 -> 14.5 at the second pool trains (as Keras and PyTorch) and says so."""
    data = _folder_64(tmp_path / "pets")
    assert _train("--data", data, "--model", ISSUE_SPEC, "--out", tmp_path / "run") == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cnnkit: warning:")]
    assert len(lines) == 1, err
    assert ("MaxPool 'maxpool2': output size O = (W − K + 2P)/S + 1 = (29 − 2 + 2·0)/2 + 1 = "
            "14.50 is rounded down to 14") in lines[0]
    assert "the last 1 row and the last 1 column of the 29x29 input are not used" in lines[0]
    assert _train("--data", data, "--model", ISSUE_SPEC, "--rounding", "floor", "--out",
                  tmp_path / "silent") == 0
    assert "warning" not in capsys.readouterr().err
    assert _train("--data", data, "--model", ISSUE_SPEC, "--rounding", "strict", "--out",
                  tmp_path / "strict") == 2
    assert "14.50 is not an integer" in capsys.readouterr().err


def _config(*argv):
    from cnnkit.cli import build_parser
    from cnnkit.cli.train import config_of

    return config_of(build_parser().parse_args(["train", *argv]))


def test_a_named_dataset_starts_from_its_tuned_recipe():
    """#18 item 3: --data mnist is the mnist-fast path unless the user opts out."""
    from cnnkit.train.recipes import get_recipe

    config, note = _config("--data", "mnist")
    fast = get_recipe("mnist-fast").config()
    assert (config.model, config.epochs, config.batch_size, config.lr) == (
        fast.model, fast.epochs, fast.batch_size, fast.lr)
    assert note.startswith("recipe mnist-fast: the tuned settings for --data mnist")
    assert "--no-recipe trains with the generic defaults" in note
    config, _ = _config("--data", "mnist", "--epochs", "5")  # flags override the recipe
    assert config.epochs == 5 and config.batch_size == fast.batch_size
    config, note = _config("--data", "mnist", "--no-recipe")
    assert note is None and config.epochs == 8 and config.batch_size == 64
    config, note = _config("--data", "digits")  # no tuned recipe: the generic defaults
    assert note is None and config.epochs == 8


def test_the_generic_default_model_is_no_slower_per_image_than_mnist_fast():
    from cnnkit.inspect.summary import summary
    from cnnkit.models import Sequential
    from cnnkit.train.config import DEFAULT_MODEL
    from cnnkit.train.recipes import get_recipe

    def macs(spec):
        return summary(Sequential.from_spec(spec, "28x28x1"), "28x28x1").to_dict()["macs"]

    assert macs(DEFAULT_MODEL) <= macs(get_recipe("mnist-fast").settings["model"])
