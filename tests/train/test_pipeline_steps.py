"""The named steps of ``train``: open data, build the model, fit, write results (built-in digits)."""
import json

import pytest
import torch

from cnnkit import run as rf
from cnnkit.data.loader import InMemoryLoader
from cnnkit.train import distributed
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import (TrainingData, build_run_model, fit_model, open_training_data,
                                   write_results, write_run_files)

TINY_SPEC = "conv(4,3) relu flatten fc(10)"


def _config(tmp_path, **changes) -> TrainConfig:
    return TrainConfig(**{"out": str(tmp_path / "run"), "epochs": 1, "device": "cpu",
                          "model": TINY_SPEC, "batch_size": 256, **changes})


@pytest.fixture(scope="module")
def ctx():
    return distributed.DistributedContext()


@pytest.fixture(scope="module")
def data(tmp_path_factory, ctx) -> TrainingData:
    config = _config(tmp_path_factory.mktemp("data"))
    return open_training_data(config, ctx, torch.device("cpu"))


def test_open_training_data_gives_in_memory_loaders_and_the_data_facts(data):
    assert data.class_names == [str(d) for d in range(10)]
    assert data.input_shape == (1, 8, 8)
    assert not data.streamed and isinstance(data.train_loader, InMemoryLoader)
    assert data.val_loader is not None and data.test_loader is not None
    assert data.sample.dtype == torch.uint8 and data.sample.shape[1:] == (1, 8, 8)
    assert data.n_train == len(data.sample)  # digits is small: the sample is every image
    x, y = next(iter(data.train_loader))
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8) and y.dtype == torch.int64


def test_open_training_data_rejects_streaming_a_non_folder(tmp_path, ctx):
    with pytest.raises(ValueError, match="stream=True needs a folder"):
        open_training_data(_config(tmp_path, stream=True), ctx, torch.device("cpu"))


def test_build_run_model_sizes_the_model_for_the_data(tmp_path, data):
    model = build_run_model(_config(tmp_path), data)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    zoo = build_run_model(_config(tmp_path, model="keras_mnist"), data)
    assert zoo.input_shape == (1, 8, 8) and zoo.num_classes == 10


def test_build_run_model_uses_the_model_builder(tmp_path, data):
    seen = []

    def builder(num_classes, input_shape):
        seen.append((num_classes, input_shape))
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))

    model = build_run_model(_config(tmp_path), data, builder)
    assert seen == [(10, (1, 8, 8))] and model[1].out_features == 10


def test_fit_model_trains_one_epoch_and_logs_it(tmp_path, data, ctx):
    config = _config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    model = build_run_model(config, data)
    before = [p.detach().clone() for p in model.parameters()]
    trainer, history = fit_model(config, model, data, out, ctx=ctx, progress=False)
    assert history.epoch == [1] and trainer.epoch == 1
    assert {"loss", "val_loss", "val_accuracy"} <= set(history.history)
    assert [r["epoch"] for r in rf.read_metrics(out)] == [1]
    assert (out / rf.CHECKPOINT_DIR / "last.json").is_file()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_write_run_files_and_write_results_fill_the_run_folder(tmp_path, data, ctx):
    config = _config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    model = build_run_model(config, data)
    write_run_files(out, config, model, data)
    assert json.loads((out / rf.MODEL_FILE).read_text())["input_shape"] == [1, 8, 8]
    assert TrainConfig.from_file(out / rf.CONFIG_FILE) == config
    assert "conv" in (out / rf.SUMMARY_FILE).read_text().lower()

    trainer, history = fit_model(config, model, data, out, ctx=ctx, progress=False)
    results = write_results(out, trainer, history, data, ctx=ctx)
    assert results["epochs"] == 1 and 0.0 <= results["test_accuracy"] <= 1.0
    assert len(results["test_confusion_matrix"]) == 10
    assert json.loads((out / rf.RESULTS_FILE).read_text()) == results
    assert (out / rf.CURVES_FILE).stat().st_size > 0
    loaded = rf.load_run(out)
    x = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    assert torch.allclose(loaded.predict_proba(x), trainer.eval_model.eval()(
        loaded.normalization.apply(x)).softmax(1), atol=1e-6)


def test_a_task_run_stops_early_on_its_main_metric(tmp_path, ctx):
    # segmentation: early stopping watches val_miou (higher is better), not val_loss
    from cnnkit.data.scenes import write_scenes
    from cnnkit.train.callbacks import EarlyStopping

    folder = write_scenes("mnist-segment", tmp_path / "seg", sizes={"train": 8, "val": 4,
                                                                   "test": 0}, source="builtin")
    config = TrainConfig(data=str(folder), epochs=1, device="cpu", batch_size=8,
                         early_stopping=3, out=str(tmp_path / "run"))
    data = open_training_data(config, ctx, torch.device("cpu"))
    assert data.task == "segment" and data.class_names[0] == "background"
    model = build_run_model(config, data)
    assert model.architecture["head"] == "unet"  # head "auto": the task's default
    out = tmp_path / "run"
    out.mkdir()
    trainer, history = fit_model(config, model, data, out, ctx=ctx, progress=False)
    stopper, = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    assert stopper.monitor == "val_miou" and stopper.mode == "max"
    assert "val_miou" in history.history and trainer.main_metric == "miou"


def test_a_mistyped_model_name_suggests_the_closest_models():
    from cnnkit.train.pipeline import build_model

    with pytest.raises(ValueError, match=r"unknown model 'resnet19'; did you mean 'resnet18'.*"
                                         r"`cnnkit models` lists the models"):
        build_model("resnet19", num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="unknown layer 'relux'"):  # a spec keeps its message
        build_model("conv(4,3) relux", num_classes=10, input_shape=(1, 28, 28))
