"""Resuming fine-tuning runs whose optimizer gained groups (gradual unfreezing): bitwise equal to
an uninterrupted run, and a clear error when the checkpoint does not fit the schedule."""
import json

import pytest
import torch
from safetensors.torch import load_file

from cnnkit.errors import CheckpointError
from cnnkit.models import Sequential
from cnnkit.train import Trainer, TrainConfig
from cnnkit.transfer_learning import FineTuneSettings, GradualUnfreezing, finetune, freeze

# layer groups: "0" (conv), "2" (conv), "6" (fc 16), "head"
SPEC = ("conv(4,3,padding=same) relu conv(4,3,padding=same) relu maxpool(2) flatten "
        "fc(16) relu fc(10)")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, colour_squares):
    """3 classes x 12 RGB 8x8 PNGs: red, green, blue squares with noise."""
    return colour_squares(tmp_path_factory.mktemp("imgs") / "data", size=8,
                          per_class=12)


def _pretrained():
    torch.manual_seed(5)
    return Sequential.from_spec(SPEC, "8x8x3")


def _config(folder, out):
    return TrainConfig(data=str(folder), epochs=5, lr=0.01, optimizer="adamw",
                       weight_decay=0.01, schedule="cosine", batch_size=8, val_split=0.2,
                       precision="fp32", device="cpu", out=str(out))


SETTINGS = FineTuneSettings(head_epochs=1, unfreeze_every=1, lr_decay=0.5)


def test_interrupted_fine_tuning_resumes_bitwise_equal_to_a_straight_run(interrupt_at, folder,
                                                                          tmp_path):
    straight = finetune(_pretrained(), _config(folder, tmp_path / "a"), settings=SETTINGS,
                        progress=False)
    with pytest.raises(KeyboardInterrupt):  # after epoch 2: head + group "6" in the optimizer
        finetune(_pretrained(), _config(folder, tmp_path / "b"), settings=SETTINGS,
                 callbacks=[interrupt_at(3)], progress=False)
    saved = json.loads((tmp_path / "b" / "checkpoint" / "last.json").read_text())
    assert saved["epoch"] == 2
    assert [g.get("name") for g in saved["optimizer"]["param_groups"]] == [None, "6"]

    torch.manual_seed(123)  # a fresh process: other RNG state
    resumed = finetune(resume=tmp_path / "b", progress=False)

    assert resumed.load_report is None
    a = load_file(str(tmp_path / "a" / "weights.safetensors"))
    b = load_file(str(tmp_path / "b" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.run.history.epoch == [1, 2, 3, 4, 5]
    assert resumed.run.history.history["loss"] == straight.run.history.history["loss"]
    last = [json.loads((tmp_path / run / "checkpoint" / "last.json").read_text())
            for run in ("a", "b")]
    groups = [[(g.get("name"), g["lr"], g["initial_lr"]) for g in m["optimizer"]["param_groups"]]
              for m in last]
    assert groups[0] == groups[1]
    assert [name for name, _, _ in groups[0]] == [None, "6", "2", "0"]
    assert last[0]["callbacks"] == last[1]["callbacks"] == {
        "0:GradualUnfreezing": {"unfrozen": ["6", "2", "0"]}}
    record = json.loads((tmp_path / "b" / "finetune.json").read_text())
    assert record["head_epochs"] == 1 and record["unfreeze_every"] == 1


def test_resume_with_other_settings_is_refused(interrupt_at, folder, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        finetune(_pretrained(), _config(folder, tmp_path / "b"), settings=SETTINGS,
                 callbacks=[interrupt_at(2)], progress=False)
    other = FineTuneSettings(head_epochs=2, unfreeze_every=1)
    with pytest.raises(ValueError, match=r"settings=FineTuneSettings\(.*head_epochs=2.*\) "
                                         r"differ from those the run was started with"):
        finetune(resume=tmp_path / "b", settings=other)
    with pytest.raises(ValueError, match="takes its source, data and settings from the run "
                                         "folder; leave out source, config"):
        finetune(_pretrained(), _config(folder, tmp_path / "c"), resume=tmp_path / "b")


def _tiny_trainer(folder, unfreezing, extra=()):
    torch.manual_seed(0)
    model = Sequential.from_spec(SPEC, "8x8x1")
    freeze(model, all_but_head=True)
    config = TrainConfig(epochs=4, lr=0.01, optimizer="sgd", momentum=0.9, schedule="cosine",
                         precision="fp32", device="cpu")
    return Trainer(model, config, callbacks=[unfreezing, *extra], checkpoint_dir=folder,
                   progress=False)


def _batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(3)]


def test_a_checkpoint_from_another_schedule_is_a_clear_error(interrupt_at, tmp_path):
    first = _tiny_trainer(tmp_path, GradualUnfreezing(head_epochs=1, every=1),
                          [interrupt_at(3)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(_batches())
    later = _tiny_trainer(tmp_path, GradualUnfreezing(head_epochs=2, every=1))
    with pytest.raises(CheckpointError, match=(
            r"the checkpoint \(epoch 2\) had unfrozen the layer groups \['6'\], but "
            r"GradualUnfreezing\(head_epochs=2, every=1, frozen_up_to=None\) unfreezes \[\] by "
            r"epoch 2; resume with the fine-tuning settings the run was started with")):
        later.fit(_batches(), resume_from=tmp_path)
    # the same schedule resumes, and the groups come back in the schedule's order
    same = _tiny_trainer(tmp_path, GradualUnfreezing(head_epochs=1, every=1))
    same.fit(_batches(), resume_from=tmp_path)
    assert [g.get("name") for g in same.optimizer.param_groups] == [None, "6", "2", "0"]
