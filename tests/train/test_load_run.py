"""A loaded run applies the training data's transform: channels, size, normalisation."""
from __future__ import annotations

import pytest
import torch

from cnnkit.data.open import open_data
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import train
from cnnkit.train.run_folder import load_run


@pytest.fixture(scope="module")
def resized_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    train(TrainConfig(data="digits", input_size=16, epochs=1, device="cpu", out=str(out)),
          progress=False)
    return out


def test_predict_resizes_like_the_training_data(resized_run):
    loaded = load_run(resized_run)
    assert loaded.input_shape == (1, 16, 16)
    native = open_data("digits").test.images[:20]                      # (20, 1, 8, 8)
    trained_on = open_data("digits", size=(16, 16)).test.images[:20]   # what training saw
    torch.testing.assert_close(loaded.predict_proba(native), loaded.predict_proba(trained_on))


def test_predict_converts_rgb_to_the_models_grey_channel(resized_run):
    loaded = load_run(resized_run)
    grey = open_data("digits", size=(16, 16)).test.images[:5]
    rgb = grey.expand(-1, 3, -1, -1)                                   # (5, 1, H, W) -> (5, 3, H, W)
    torch.testing.assert_close(loaded.predict_proba(rgb), loaded.predict_proba(grey))


def test_channels_last_images_get_a_clear_error(resized_run):
    loaded = load_run(resized_run)
    with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)"):
        loaded.predict_proba(torch.zeros(2, 16, 16, 1, dtype=torch.uint8))


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_again(tmp_path):
    import shutil

    from cnnkit.train.run_folder import read_metrics

    out = tmp_path / "run"
    train(TrainConfig(data="digits", epochs=2, device="cpu", out=str(out)), progress=False)
    shutil.rmtree(out / "checkpoint")  # as if killed during epoch 1
    (out / "metrics.jsonl").write_text("")
    result = train(resume=out, progress=False)
    assert result.history.epoch == [1, 2]
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_channels_last_runs_resume_bitwise(tmp_path, precision):
    """A resumed channels-last run must restore the optimizer state in the weights' layout."""
    from safetensors.torch import load_file

    from cnnkit.train.callbacks import Callback

    class StopAfter2(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = epoch == 2

    def config(name):
        return TrainConfig(data="digits", epochs=4, device="cpu", precision=precision,
                           channels_last=True, out=str(tmp_path / name))

    train(config("straight"), progress=False)
    train(config("resumed"), progress=False, callbacks=[StopAfter2()])
    train(resume=tmp_path / "resumed", progress=False)
    straight = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "weights.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
