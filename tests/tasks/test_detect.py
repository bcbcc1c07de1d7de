import torch

from cnnkit.tasks.detect import Detector

from _tiny import TinyBackbone


def make():
    torch.manual_seed(0)
    return Detector(TinyBackbone(), 3, stride=4, hidden=8)


def targets():
    return {"boxes": [torch.tensor([[2.0, 2.0, 10.0, 12.0]]),
                      torch.tensor([[4.0, 4.0, 12.0, 12.0], [16.0, 16.0, 30.0, 28.0]])],
            "labels": [torch.tensor([1]), torch.tensor([0, 2])]}


def test_shapes_and_gradients_on_every_parameter():
    model = make()
    assert model.stride == 4
    raw = model(torch.randn(2, 1, 32, 32))
    assert raw["heatmap"].shape == (2, 3, 8, 8) and raw["size"].shape == (2, 2, 8, 8)
    model.loss(raw, targets())["loss"].backward()
    # the stride-8 stage of the backbone is not used by a stride-4 detector
    used = [p for name, p in model.named_parameters() if not name.startswith("backbone.stages.2")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in used)


def test_loss_decreases():
    model = make()
    x = torch.randn(2, 1, 32, 32)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = model.loss(model(x), targets())["loss"]
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_decode_of_hand_made_heatmap_gives_the_box():
    model = make()
    heat = torch.full((1, 3, 8, 8), -10.0)
    heat[0, 2, 3, 5] = 5.0  # class 2 peak at row 3, col 5
    size = torch.zeros(1, 2, 8, 8)
    size[0, :, 3, 5] = torch.tensor([2.0, 3.0])  # 8 x 12 pixels at stride 4
    offset = torch.zeros(1, 2, 8, 8)
    offset[0, :, 3, 5] = torch.tensor([0.5, 0.25])
    boxes, scores, labels = model.decode({"heatmap": heat, "size": size, "offset": offset},
                                         score_threshold=0.5, max_detections=4)
    assert boxes.shape == (1, 4, 4) and labels[0, 0] == 2
    # centre (5.5·4, 3.25·4) = (22, 13), size 8 x 12
    assert torch.allclose(boxes[0, 0], torch.tensor([18.0, 7.0, 26.0, 19.0]))
    assert scores[0, 0] > 0.99 and (scores[0, 1:] == 0).all()
