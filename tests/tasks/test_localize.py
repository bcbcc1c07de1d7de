import pytest
import torch

from cnnkit.tasks.localize import LocalizationModel

from _tiny import TinyBackbone


def make(seed=0):
    torch.manual_seed(seed)
    return LocalizationModel(TinyBackbone(), 3)


def targets():
    return {"labels": torch.tensor([0, 2]),
            "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.2], [0.3, 0.6, 0.2, 0.3]])}


def test_shapes_and_gradients_on_every_parameter():
    model = make()
    out = model(torch.randn(2, 1, 20, 24))
    assert out["logits"].shape == (2, 3) and out["boxes"].shape == (2, 4)
    assert ((out["boxes"] > 0) & (out["boxes"] < 1)).all()
    model.loss(out, targets())["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_loss_decreases_on_a_tiny_batch():
    model = make()
    x = torch.randn(2, 1, 16, 16)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(30):
        loss = model.loss(model(x), targets())["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_decode_gives_pixel_xyxy():
    out = {"boxes": torch.tensor([[0.5, 0.25, 0.5, 0.5], [0.1, 0.1, 0.4, 0.4]])}
    boxes = LocalizationModel.decode(out, (40, 80))
    assert torch.allclose(boxes, torch.tensor([[20.0, 0.0, 60.0, 20.0], [0.0, 0.0, 24.0, 12.0]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        LocalizationModel(TinyBackbone(), 0)
    with pytest.raises(ValueError, match="box_weight"):
        LocalizationModel(TinyBackbone(), 2, box_weight=-1)
