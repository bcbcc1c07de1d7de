"""TensorBoard event files, read back with tensorboard's own EventAccumulator."""
import logging

import pytest
import torch
from train_helpers import make_blobs, small_cnn

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from cnnkit.cli import build_parser  # noqa: E402
from cnnkit.data.loader import TensorBatches  # noqa: E402
from cnnkit.train.config import TrainConfig  # noqa: E402
from cnnkit.train.pipeline import train  # noqa: E402
from cnnkit.train.tensorboard import TensorBoardLogger, resolve_tensorboard  # noqa: E402
from cnnkit.train.trainer import Trainer  # noqa: E402


def _events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0,
                                                          "tensors": 0})
    events.Reload()
    return events


def _steps(events, tag) -> list[int]:
    return [e.step for e in events.Scalars(tag)]


def test_scalars_per_step_and_epoch_graph_and_mistakes(tmp_path):
    x, y = make_blobs(128)
    wrong = (y + 1) % 4  # labels the model cannot match: every image is a "mistake"
    logger = TensorBoardLogger(tmp_path / "tb", example=x[:2],
                               mistakes=TensorBatches(x[:16], wrong[:16], batch_size=8),
                               class_names=["a", "b", "c", "d"], max_images=3)
    trainer = Trainer(small_cnn(), TrainConfig(epochs=2, device="cpu", lr=1e-2), progress=False,
                      log_every=1, callbacks=[logger])
    trainer.fit(TensorBatches(x, y, batch_size=32, shuffle=True),
                TensorBatches(x, y, batch_size=64))
    events = _events(tmp_path / "tb")
    assert _steps(events, "step/loss") == _steps(events, "step/lr") == list(range(1, 9))
    for tag in ("epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy",
                "epoch/lr"):
        assert _steps(events, tag) == [1, 2], tag
    lr = [e.value for e in events.Scalars("step/lr")]
    assert lr[0] > lr[-1]  # the cosine schedule, step by step
    assert events.Tags()["graph"]
    assert any(n.name.startswith("Sequential/Conv2d[0]/") for n in events.Graph().node)
    (image,) = events.Images("mistakes/val")
    assert image.step == 2 and image.width > 8 and image.height >= 8  # 3 images tiled
    (text,) = events.Tensors("mistakes/val/text_summary")
    caption = text.tensor_proto.string_val[0].decode()
    assert caption.count("true **") == 3 and "predicted **" in caption


def test_a_model_that_cannot_be_traced_still_trains(tmp_path, caplog):
    x, y = make_blobs(64)
    logger = TensorBoardLogger(tmp_path / "tb", example=torch.zeros(2, 3, 8, 8))  # 3 channels
    trainer = Trainer(small_cnn(), TrainConfig(epochs=1, device="cpu"), progress=False,
                      callbacks=[logger])
    with caplog.at_level(logging.WARNING):
        history = trainer.fit(TensorBatches(x, y, batch_size=32))
    assert history.epoch == [1]
    assert "TensorBoard: could not trace the model's graph" in caplog.text
    events = _events(tmp_path / "tb")
    assert not events.Tags()["graph"] and _steps(events, "epoch/loss") == [1]


def test_a_run_folder_gets_event_files_by_default(tmp_path):
    train(TrainConfig(out=str(tmp_path / "run"), epochs=1, device="cpu",
                      model="flatten fc(10)"), progress=False)
    events = _events(tmp_path / "run" / "tensorboard")
    assert _steps(events, "epoch/val_accuracy") == [1] and events.Tags()["graph"]
    assert events.Tags()["images"] == ["mistakes/val"]


def test_the_setting_and_its_flags():
    assert resolve_tensorboard(None) and resolve_tensorboard(True)
    assert not resolve_tensorboard(False)
    parser = build_parser()
    assert parser.parse_args(["train", "--no-tensorboard"]).tensorboard is False
    assert parser.parse_args(["train", "--tensorboard"]).tensorboard is True
    assert not hasattr(parser.parse_args(["train"]), "tensorboard")  # None: the config's auto
    with pytest.raises(TypeError, match=r"tensorboard must be True, False or None .* got 'yes'"):
        TrainConfig(tensorboard="yes")


def test_graph_def_is_torchs_graph_without_the_trace_check():
    from torch.utils.tensorboard._pytorch_graph import graph

    from cnnkit.train.tensorboard import graph_def
    model = small_cnn().eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        ours, ours_stats = graph_def(model, x)
        theirs, theirs_stats = graph(model, x, use_strict_trace=False)
    assert len(ours.node) > 5 and any("conv" in n.op.lower() for n in ours.node)
    assert ours == theirs and ours_stats == theirs_stats
