"""The one Trainer loop on localisation, segmentation and detection (Trainer(objective=...))."""
from __future__ import annotations

import pytest
import torch

from cnnkit.data.annotated import AnnotatedData
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.scenes import open_scenes
from cnnkit.models import Sequential
from cnnkit.tasks.build import default_for, task_model
from cnnkit.tasks.objective import objective_for
from cnnkit.train.config import TrainConfig
from cnnkit.train.trainer import Trainer

# Stride-2 convs without BatchNorm: a micro-batch then computes exactly what the whole batch
# does (BN in training mode would normalise each micro-batch by its own statistics).
NO_BN_BACKBONE = "conv(8,3,stride=2,padding=same) relu conv(16,3,stride=2,padding=same) relu"

_SCENES = {"localize": "mnist-localize", "segment": "mnist-segment", "detect": "mnist-detect"}
_CACHE: dict[str, object] = {}


def _splits(task):
    """16 training and 8 validation scenes of ``task`` from the built-in 8x8 digits."""
    if task not in _CACHE:
        _CACHE[task] = open_scenes(_SCENES[task], sizes={"train": 16, "val": 8, "test": 0},
                                   source="builtin")
    return _CACHE[task]


def _loaders(splits, batch_size=8):
    return (InMemoryLoader(splits.train, batch_size=batch_size, seed=0),
            InMemoryLoader(splits.val, batch_size=8, shuffle=False))


def _trainer(task, config, *, model=None, seed=0, **kwargs):
    splits = _splits(task)
    c, h, w = splits.input_shape
    torch.manual_seed(seed)
    model = model if model is not None else default_for(task, (h, w, c),
                                                        len(splits.class_names))
    objective = objective_for(model, task, splits.input_shape, splits.class_names)
    return Trainer(model, config, objective=objective, progress=False, **kwargs)


@pytest.mark.parametrize("task, lr", [("localize", 3e-3), ("segment", 1e-2)])
def test_overfitting_16_scenes_lowers_the_loss(task, lr):
    trainer = _trainer(task, TrainConfig(epochs=6, lr=lr, schedule="constant", device="cpu",
                                          precision="fp32"))
    history = trainer.fit(*_loaders(_splits(task)))
    losses = history.history["loss"]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert trainer.main_metric == {"localize": "mean_iou", "segment": "miou"}[task]


def _no_bn_model(task):
    splits = _splits(task)
    c, h, w = splits.input_shape
    backbone = Sequential.from_spec(NO_BN_BACKBONE, input_shape=(h, w, c))
    if task == "segment":  # FCN with one skip: the 2-stage backbone has one earlier stage
        return task_model(task, backbone, len(splits.class_names), head="fcn", skips=1)
    return task_model(task, backbone, len(splits.class_names), head="localization")


def _sgd_weight_change(model, data, steps):
    """Minus the gradient of one plain-SGD step (lr 1) over all of ``data`` as one batch,
    and that step's loss."""
    config = TrainConfig(epochs=1, lr=1.0, optimizer="sgd", momentum=0.0, schedule="constant",
                         accumulate_steps=steps, device="cpu", precision="fp32",  # auto: bf16
                         fused_optimizer=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    objective = objective_for(model, data.task, data.input_shape, data.class_names)
    trainer = Trainer(model, config, objective=objective, progress=False)
    history = trainer.fit(InMemoryLoader(data, batch_size=len(data), shuffle=False))
    assert trainer.global_step == 1
    return ({k: before[k] - v for k, v in model.state_dict().items()},
            history.history["loss"][0])


def _assert_same_gradients(grads, others):
    assert any(g.abs().sum() > 0 for g in grads.values())
    for name, grad in grads.items():
        # float32 sums over 16 x 96 x 96 pixels round differently in halves (~1e-4 relative);
        # a wrong micro-batch weight would be off by a factor (e.g. 2)
        error = (grad - others[name]).abs().max()
        assert error <= 1e-3 * grad.abs().max() + 1e-9, (name, float(error))


@pytest.mark.parametrize("task", ["localize", "segment"])
def test_accumulate_steps_2_gives_the_gradients_of_one_step(task):
    """Plain SGD with lr 1 on one batch of 16: the weight change is minus the gradient.

    Cross-entropy, smooth-L1 and GIoU are means over images (and the scenes' masks have no
    ignored pixels), so the two halves weighted 1/2 each sum to the whole batch's gradient."""
    results = {}
    for steps in (1, 2):
        torch.manual_seed(3)
        results[steps] = _sgd_weight_change(_no_bn_model(task), _splits(task).train, steps)
    (grads_1, loss_1), (grads_2, loss_2) = results[1], results[2]
    _assert_same_gradients(grads_1, grads_2)
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)


def test_accumulate_steps_with_ignored_pixels_gives_the_gradients_of_one_step():
    train = _splits("segment").train
    masks = train.masks.clone()
    masks[:8, :80] = 255  # the first micro-batch has far fewer scored pixels
    data = AnnotatedData("segment", train.images, list(train.class_names), masks=masks,
                         names=list(train.names))
    changes = {}
    for steps in (1, 2):
        torch.manual_seed(3)
        changes[steps], _ = _sgd_weight_change(_no_bn_model("segment"), data, steps)
    _assert_same_gradients(changes[1], changes[2])


@pytest.mark.parametrize("task, val_keys", [
    ("localize", {"val_loss", "val_accuracy", "val_mean_iou", "val_iou50"}),
    ("segment", {"val_loss", "val_miou", "val_pixel_accuracy"}),
    ("detect", {"val_loss", "val_map", "val_map50", "val_map75", "val_recall"}),
])
def test_epoch_logs_hold_numbers_only_with_the_task_metrics(task, val_keys):
    trainer = _trainer(task, TrainConfig(epochs=1, lr=3e-3, device="cpu", precision="fp32"))
    history = trainer.fit(*_loaders(_splits(task)))
    logs = {k: v[-1] for k, v in history.history.items()}
    assert {k for k in logs if k.startswith("val_")} == val_keys
    assert {"loss", "lr", "time_s", "images_per_s"} <= set(logs)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in logs.values()), logs
    # the per-class lists stay in evaluate's result
    full = trainer.evaluate(_loaders(_splits(task))[1])
    per_class = {"localize": None, "segment": "per_class_iou", "detect": "per_class_ap"}[task]
    if per_class is not None:
        assert per_class in full and f"val_{per_class}" not in logs
    assert 0.0 <= logs[f"val_{trainer.main_metric}"] <= 1.0


@pytest.mark.parametrize("task", [
    "localize", "segment",
    "detect",
])
def test_every_parameter_of_the_default_model_gets_a_gradient(task):
    """What ``--nproc N`` (DistributedDataParallel without unused-parameter search) needs."""
    splits = _splits(task)
    c, h, w = splits.input_shape
    model = default_for(task, (h, w, c), len(splits.class_names))
    objective = objective_for(model, task, splits.input_shape, splits.class_names)
    x, y = next(iter(InMemoryLoader(splits.train, batch_size=4, shuffle=False)))
    objective.loss(model(x), y).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []


def _resumable(task, folder, seed, callbacks=()):
    config = TrainConfig(epochs=4, lr=3e-3, optimizer="adamw", weight_decay=1e-2,
                         schedule="onecycle", grad_clip=1.0, device="cpu", precision="fp32")
    return _trainer(task, config, seed=seed, checkpoint_dir=folder, callbacks=list(callbacks))


@pytest.mark.parametrize("task", ["localize", "segment"])
def test_a_resumed_task_run_ends_with_the_uninterrupted_weights(task, interrupt_at, tmp_path):
    splits = _splits(task)
    straight = _resumable(task, tmp_path / "a", seed=0)
    straight.fit(*_loaders(splits))

    first = _resumable(task, tmp_path / "b", seed=0, callbacks=[interrupt_at(3)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(*_loaders(splits))
    resumed = _resumable(task, tmp_path / "b", seed=99)  # another init: the checkpoint must win
    resumed.fit(*_loaders(splits), resume_from=tmp_path / "b")

    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # BatchNorm running statistics too
    assert resumed.history.epoch == [1, 2, 3, 4]
    assert resumed.history.history["loss"] == straight.history.history["loss"]
    main = f"val_{straight.main_metric}"
    assert resumed.history.history[main] == straight.history.history[main]
