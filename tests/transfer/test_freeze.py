"""Frozen weights stay bit-identical through training; BN statistics of frozen parts stay put."""
import pytest
import torch
from torch import nn

from cnnkit.models import create
from cnnkit.train import Trainer, TrainConfig
from cnnkit.train.optimizers import build_optimizer
from cnnkit.transfer_learning import (GradualUnfreezing, discriminative_param_groups, freeze,
                                      layer_groups, trainable_summary, transfer, unfreeze)


def _tiny_resnet():
    torch.manual_seed(0)
    return create("resnet18", num_classes=3, in_channels=1, input_size=16)


def _batches(n=4, size=16, classes=3):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, size, size, generator=g), torch.randint(0, classes, (8,),
                                                                        generator=g))
            for _ in range(n)]


@pytest.mark.parametrize("opt, kwargs", [("sgd", {"momentum": 0.9, "weight_decay": 0.1}),
                                         ("adamw", {"weight_decay": 0.1})])
def test_frozen_parameters_and_bn_stats_do_not_change(opt, kwargs):
    model = _tiny_resnet()
    freeze(model, up_to="layer2")
    frozen = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(("conv1", "bn1", "layer1", "layer2"))}
    live = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("layer3")}
    optimizer = build_optimizer(opt, model.parameters(), lr=0.1, **kwargs)
    model.train()
    for x, y in _batches():
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)   # weights and BN stats
    assert any(not torch.equal(live[k], after[k]) for k in live)   # the rest did train
    frozen_ids = {id(p) for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen_ids and not frozen_ids & {id(p) for p in optimizer.state}
    assert not frozen_ids & {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert model.bn1.training is False and model.layer3[0].bn1.training is True


def test_trainer_keeps_a_frozen_backbone_identical():
    model = _tiny_resnet()
    freeze(model, all_but_head=True)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    head = model.fc.weight.clone()
    Trainer(model, TrainConfig(epochs=2, device="cpu", optimizer="sgd", lr=0.1,
                               weight_decay=0.01), progress=False).fit(_batches())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head, model.fc.weight)


def test_unfreeze_restores_training_mode_and_gradients():
    model = _tiny_resnet()
    freeze(model)
    assert trainable_summary(model).trainable == 0
    with pytest.raises(ValueError, match="every one of the .* parameters is frozen"):
        build_optimizer("sgd", model.parameters())
    unfreeze(model, "layer1")
    model.train()
    model(torch.randn(2, 1, 16, 16))
    assert model.layer1[0].bn1.training and not model.bn1.training
    summary = trainable_summary(model)
    assert summary.trainable == sum(p.numel() for p in model.layer1.parameters())
    assert "(" in str(summary) and "layer1" in str(summary)


def test_selectors_and_their_errors():
    model = _tiny_resnet()
    freeze(model, ["conv1", -1])       # a group name and an index (the head)
    assert not model.bn1.weight.requires_grad and not model.fc.weight.requires_grad
    assert model.layer1[0].conv1.weight.requires_grad
    freeze(model, "layer4.1.conv2")    # one module inside a group
    assert not model.layer4[1].conv2.weight.requires_grad
    assert model.layer4[1].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="names no layer group or module.*layer groups: conv1"):
        freeze(model, "layer9")
    with pytest.raises(ValueError, match="out of range"):
        freeze(model, up_to=17)
    with pytest.raises(ValueError, match="only one of"):
        freeze(model, "conv1", all_but_head=True)


def test_discriminative_rates_decay_towards_the_input():
    model = transfer(_tiny_resnet(), 3)
    groups = discriminative_param_groups(model, lr=1.0, decay=0.5)
    assert [g["name"] for g in groups] == [g.name for g in layer_groups(model)]
    assert [g["lr"] for g in groups] == [0.5 ** d for d in range(5, -1, -1)]
    with pytest.raises(ValueError, match="lr_decay must be a number in"):
        discriminative_param_groups(model, lr=1.0, decay=0)


def test_gradual_unfreezing_adds_groups_under_the_schedule():
    model = _tiny_resnet()
    freeze(model, all_but_head=True)
    conv1 = model.conv1.weight.clone()
    unfreezing = GradualUnfreezing(head_epochs=1, every=1, lr_decay=0.5, frozen_up_to="layer2")
    trainer = Trainer(model, TrainConfig(epochs=3, device="cpu", optimizer="sgd", lr=0.1,
                                         schedule="cosine"),
                      callbacks=[unfreezing], progress=False)
    trainer.fit(_batches())
    assert unfreezing.unfrozen == ["layer4", "layer3"]
    names = [g.get("name") for g in trainer.optimizer.param_groups]
    assert names == [None, "layer4", "layer3"]
    assert [g["initial_lr"] for g in trainer.optimizer.param_groups] == [0.1, 0.05, 0.025]
    # every group follows the same cosine factor
    factors = [g["lr"] / g["initial_lr"] for g in trainer.optimizer.param_groups]
    assert factors == pytest.approx([factors[0]] * 3)
    assert torch.equal(conv1, model.conv1.weight)
    assert not model.layer2[0].conv1.weight.requires_grad and model.layer3[0].conv1.weight.requires_grad


def test_cnnkit_bn_layer_of_a_spec_model_joins_its_conv_and_freezes_its_statistics():
    from cnnkit import Sequential
    torch.manual_seed(0)
    model = Sequential.from_spec("conv(8,3) bn relu maxpool(2) conv(16,3) bn relu gap fc(3)",
                                 input_shape=(12, 12, 1))
    groups = layer_groups(model)
    assert [list(g.modules) for g in groups[:2]] == [["0", "1"], ["4", "5"]]  # conv + its bn
    freeze(model, up_to=0)
    stats = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("1.")}
    model.train()
    for x, _ in _batches(size=12):
        model(x)
    assert model[1].training is False
    assert all(torch.equal(stats[k], model.state_dict()[k]) for k in stats)  # running stats kept
