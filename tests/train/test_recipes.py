"""Named recipes: valid configs, overrides, the CLI's --recipe, the CIFAR-10 recipe on tiny data."""
from __future__ import annotations

import json

import pytest
import torch

from cnnkit.cli import main as cli_main
from cnnkit.data.dataset import ImageData
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.models import create
from cnnkit.train import Trainer, TrainConfig
from cnnkit.train.pipeline import EpochAugment
from cnnkit.train.recipes import (RECIPES, get_recipe, prepare_model, recipe_config,
                                  recipe_names)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_a_valid_config(name):
    config = recipe_config(name)
    assert isinstance(config, TrainConfig)
    for key, value in get_recipe(name).settings.items():
        assert getattr(config, key) == value
    # bf16 where native, except where it was measured slower (train/recipes.py says why)
    assert config.precision == ("fp32" if name in ("mnist-segment", "mnist-detect") else "auto")


def test_overrides_win_and_are_validated():
    assert recipe_config("mnist-fast", epochs=5, seed=3).epochs == 5
    with pytest.raises(ValueError, match="unknown training setting 'epoch'"):
        recipe_config("mnist-fast", epoch=5)


def test_unknown_recipe_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown recipe 'mnist_fast'; did you mean 'mnist-fast'"):
        get_recipe("mnist_fast")
    assert recipe_names() == ("cifar10-fast", "fashion-best", "fashion-fast", "keras-mnist",
                              "mnist-detect", "mnist-fast", "mnist-lenet5", "mnist-localize",
                              "mnist-segment")


def test_recipe_settings_cannot_be_changed():
    with pytest.raises(TypeError):
        get_recipe("mnist-fast").settings["epochs"] = 100


def test_cli_trains_from_a_recipe_with_overrides(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["train", "--recipe", "mnist-fast", "--data", "digits", "--epochs", "1",
                     "--no-progress", "--out", str(out)])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == get_recipe("mnist-fast").settings["model"]  # from the recipe
    recipe = get_recipe("mnist-fast").settings
    assert saved["batch_size"] == recipe["batch_size"] and saved["schedule"] == "onecycle"
    assert saved["data"] == "digits" and saved["epochs"] == 1  # the flags override it
    assert "test accuracy" in capsys.readouterr().out


def test_cli_rejects_an_unknown_recipe(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "--recipe", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------ cifar10-fast on tiny data

def _colour_task(n: int, seed: int) -> ImageData:
    """32x32x3 noise; the class (0, 1, 2) is the channel that is brighter on average."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.rand(n, 3, 32, 32, generator=g) * 150
    images[torch.arange(n), labels] += 80
    return ImageData(images.to(torch.uint8), labels, ["r", "g", "b"])


def test_prepare_model_whitens_and_freezes_airbench_only():
    model = create("airbench", num_classes=3, in_channels=3, width=0.125)
    images = torch.randn(64, 3, 32, 32)
    assert prepare_model(model, images) is True
    assert not model.whiten.weight.requires_grad
    # The whitening filters decorrelate 2x2 patches: their outputs have ~identity covariance.
    out = torch.nn.functional.conv2d(images, model.whiten.weight[:12])  # (N, 12, 31, 31)
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)  # (12, N*31*31)
    cov = flat @ flat.T / flat.shape[1]
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    plain = torch.nn.Linear(2, 2)
    assert prepare_model(plain, images) is False


def test_cifar10_fast_recipe_learns_an_easy_task():
    train, test = _colour_task(384, 0), _colour_task(192, 1)
    # A shorter EMA horizon than the recipe's 0.99 per step: this run has only 36 steps.
    config = recipe_config("cifar10-fast", device="cpu", epochs=3, batch_size=32, ema=0.8,
                           seed=0)
    norm = Normalization.fit(train.images)
    model = create("airbench", num_classes=3, in_channels=3, width=0.125)
    prepare_model(model, norm.apply(train.images))
    augment = EpochAugment(config.augment, num_classes=3, seed=config.seed)
    loader = InMemoryLoader(train, batch_size=config.batch_size, normalization=norm,
                            augment=augment, channels_last=config.channels_last)
    trainer = Trainer(model, config, progress=False)
    history = trainer.fit(loader)
    test_loader = InMemoryLoader(test, batch_size=96, shuffle=False, normalization=norm,
                                 channels_last=True)
    result = trainer.evaluate(test_loader)  # flip TTA and the EMA weights, as the recipe says
    assert trainer.config.tta and trainer.ema is not None
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert result["accuracy"] > 0.6  # chance is 1/3


def test_training_pipeline_whitens_airbench_from_the_data_and_keeps_it_frozen(tmp_path):
    from safetensors.torch import load_file

    from cnnkit.data.normalization import Normalization
    from cnnkit.data.open import open_data
    from cnnkit.models.registry import create
    from cnnkit.train.config import TrainConfig
    from cnnkit.train.pipeline import train

    config = TrainConfig(data="digits", model="airbench", input_size=16, epochs=1,
                         device="cpu", out=str(tmp_path / "run"))
    train(config, progress=False)
    trained = load_file(str(tmp_path / "run" / "weights.safetensors"))

    splits = open_data("digits", val_split=config.val_split, seed=config.seed, size=(16, 16))
    reference = create("airbench", num_classes=10, in_channels=1, input_size=16)
    norm = Normalization.fit(splits.train.images)
    prepare_model(reference, norm.apply(splits.train.images[:5000]))
    torch.testing.assert_close(trained["whiten.weight"], reference.whiten.weight)


# ------------------------------------------------------------- the results recipes (issue #17)

RESULT_RECIPES = {"mnist-lenet5": ("mnist", "lenet5"), "keras-mnist": ("mnist", "keras_mnist"),
                  "fashion-fast": ("fashion-mnist", None), "fashion-best": ("fashion-mnist",
                                                                            "resnet18")}


@pytest.mark.parametrize("name", sorted(RESULT_RECIPES))
def test_results_recipe_builds_a_28x28_grey_classifier_that_trains(name):
    from cnnkit.augment.parse import parse_augment
    from cnnkit.train.pipeline import build_model

    config = recipe_config(name)
    data, model_name = RESULT_RECIPES[name]
    assert config.data == data and config.val_split == 0.0  # tested on the whole test split
    if model_name is not None:
        assert config.model == model_name
    torch.manual_seed(0)
    model = build_model(config.model, num_classes=10, input_shape=(1, 28, 28))
    parse_augment(config.augment, num_classes=10, seed=0)  # the augmentation string is valid
    out = model(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_keras_mnist_recipe_keeps_the_keras_example_budget():
    config = recipe_config("keras-mnist")
    assert (config.epochs, config.batch_size) == (12, 128)


def test_fashion_best_recipe_is_resnet_training_with_flips_and_crops():
    config = recipe_config("fashion-best")
    assert config.optimizer == "sgd" and config.nesterov and config.weight_decay > 0
    assert {"flip", "crop(2)"} <= set(config.augment.split(","))


def test_cli_trains_fashion_fast_for_one_epoch_on_tiny_data(tmp_path):
    out = tmp_path / "run"
    code = cli_main(["train", "--recipe", "fashion-fast", "--data", "digits", "--input-size",
                     "28", "--epochs", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == get_recipe("fashion-fast").settings["model"]
    assert saved["augment"] == "flip"
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 1 and 0.0 <= results["test_accuracy"] <= 1.0


def test_evaluate_tests_a_tta_recipe_run_as_train_did(tmp_path, capsys):
    """fashion-fast tests with flip TTA: ``cnnkit evaluate RUN`` does too, and says so."""
    out = tmp_path / "run"
    assert cli_main(["train", "--recipe", "fashion-fast", "--data", "digits", "--input-size",
                     "28", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    trained = json.loads((out / "results.json").read_text())["test_accuracy"]
    capsys.readouterr()
    reports = {}
    for flag in ([], ["--no-tta"], ["--tta"]):
        assert cli_main(["evaluate", str(out), "--json", *flag]) == 0
        reports[" ".join(flag)] = json.loads(capsys.readouterr().out)
    assert reports[""]["tta"] is True and reports["--tta"]["tta"] is True
    assert reports["--no-tta"]["tta"] is False
    assert reports[""]["accuracy"] == pytest.approx(trained, abs=1e-6)
    assert reports[""]["accuracy"] == reports["--tta"]["accuracy"]
    assert cli_main(["evaluate", str(out)]) == 0
    assert "images, with flip TTA, accuracy" in capsys.readouterr().out
    # predict follows the run the same way: the default is the run's --tta
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    probs = {}
    for flag in ([], ["--no-tta"], ["--tta"]):
        assert cli_main(["predict", str(out), *[str(tmp_path / f"{i}.png") for i in range(3)],
                         "--json", "--top", "10", "--backend", "torch", *flag]) == 0
        probs[" ".join(flag)] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert probs[""] == probs["--tta"]
    assert probs[""] != probs["--no-tta"]


def _readme_recipe_rows() -> dict[str, list[str]]:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("| recipe | data | model | epochs | batch |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].count("`") == 2:  # one recipe per row (not the scene recipes' shared row)
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_readme_recipe_table_says_what_each_recipe_sets():
    rows = _readme_recipe_rows()
    assert {"mnist-fast", "fashion-fast", "fashion-best", "keras-mnist"} <= set(rows)
    for name, (_, data, _, epochs, batch, optimizer, other) in rows.items():
        config = recipe_config(name)
        assert (data.strip("`"), int(epochs), int(batch)) == (
            config.data, config.epochs, config.batch_size), name
        assert optimizer.split()[0].lower() == config.optimizer, name
        lr = next(float(word.rstrip(",")) for word in optimizer.split()
                  if word.rstrip(",").replace(".", "").replace("e-", "").isdigit())
        assert lr == config.lr, name
        assert ("TTA" in other) == config.tta, name
        assert ("EMA" in other) == bool(config.ema), name
