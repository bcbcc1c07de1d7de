import pytest
import torch

from cnnkit.tasks.segment import FCN, UNet

from _tiny import TinyBackbone


@pytest.mark.parametrize("cls", [FCN, UNet])
@pytest.mark.parametrize("size", [(16, 16), (19, 23)])
def test_shapes_and_gradients(cls, size):
    torch.manual_seed(0)
    model = cls(TinyBackbone(), 4)
    out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 4, *size)
    masks = torch.randint(0, 4, (2, *size))
    masks[0, 0, 0] = 255
    model.loss(out, masks)["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("cls", [FCN, UNet])
def test_loss_decreases(cls):
    torch.manual_seed(0)
    model = cls(TinyBackbone(), 3)
    x = torch.randn(2, 1, 16, 16)
    masks = (x[:, 0] > 0).long()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(25):
        loss = model.loss(model(x), masks)["loss"]
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.7 * losses[0]


def test_ignore_index_and_errors():
    model = UNet(TinyBackbone(), 2)
    out = model(torch.randn(1, 1, 8, 8))
    assert model.loss(out, torch.full((1, 8, 8), 255)).keys() >= {"loss", "ce"}
    with pytest.raises(ValueError, match="skips"):
        FCN(TinyBackbone(), 2, skips=5)
    with pytest.raises(ValueError, match="class_weights"):
        UNet(TinyBackbone(), 2, class_weights=[1.0])
