"""Saliency and Grad-CAM on hand-made models where the right answer is known analytically."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.inspect.kernels import get_kernel
from cnnkit.inspect.saliency import grad_cam, saliency


def blob_detector():
    """conv (positive 5x5 blob) -> ReLU -> global average -> linear: class 0 = "bright", 1 = "dark".

    The score of class 0 is the mean conv response, so its Grad-CAM is the conv response itself,
    which peaks on the bright object; class 1 has weight -1, so nothing supports it (CAM = 0).
    """
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    linear = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(get_kernel("gaussian-blur-5")[None, None])
        linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)


def scene(top=14, left=4, size=6):
    generator = torch.Generator().manual_seed(1)
    image = 0.1 * torch.rand(1, 24, 24, generator=generator)  # dim clutter
    image[:, top:top + size, left:left + size] = 1.0  # the object
    return image


def test_grad_cam_peaks_on_the_object():
    net = blob_detector()
    image = scene()
    cam = grad_cam(net, image, target=0)
    assert cam.shape == (24, 24)
    assert cam.max().item() == pytest.approx(1.0) and cam.min().item() >= 0
    row, col = divmod(int(cam.argmax()), 24)
    assert 14 <= row < 20 and 4 <= col < 10
    # Analytically: CAM = conv response / its maximum.
    response = net[0](image[None])[0, 0].detach()
    assert torch.allclose(cam, response / response.max(), atol=1e-5)
    # The object is much hotter than the clutter far away from it.
    assert cam[:8, 14:].max() < 0.2


def test_grad_cam_follows_the_object_and_defaults_to_the_predicted_class():
    net = blob_detector()
    cam = grad_cam(net, scene(top=2, left=15))  # predicted class is 0 (positive score)
    row, col = divmod(int(cam.argmax()), 24)
    assert 2 <= row < 8 and 15 <= col < 21


def test_grad_cam_is_zero_for_a_class_nothing_supports():
    cam = grad_cam(blob_detector(), scene(), target=1)
    assert torch.count_nonzero(cam) == 0


def test_grad_cam_uses_the_last_conv_layer_and_upsamples():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(5, 3))
    image = torch.rand(3, 16, 16)
    cam = grad_cam(net, image, target=2)
    assert cam.shape == (16, 16) and 0 <= cam.min() and cam.max() <= 1
    first = grad_cam(net, image, target=2, layer="0")
    assert first.shape == (16, 16) and not torch.allclose(first, cam)
    assert all(p.grad is None for p in net.parameters())  # no side effects on the model
    with pytest.raises(ValueError, match=r"layer '1' is not a conv layer"):
        grad_cam(net, image, layer="1")
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 3\), got 3"):
        grad_cam(net, image, target=3)


class LeftHalfOnly(nn.Module):
    """Crops the image to its left half before a small CNN: the right half cannot matter."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x):
        return self.body(x[..., :, :8])  # (N, C, H, 16) -> (N, C, H, 8)


def test_saliency_is_zero_where_the_input_cannot_matter():
    sal = saliency(LeftHalfOnly(), torch.rand(3, 12, 16), target=1)
    assert sal.shape == (12, 16)
    assert torch.count_nonzero(sal[:, 8:]) == 0
    assert torch.count_nonzero(sal[:, :8]) > 0.9 * 12 * 8


def test_saliency_of_a_linear_model_is_its_weights():
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4))
    sal = saliency(net, torch.rand(2, 3, 3), target=2)
    expected = net[1].weight[2].detach().reshape(2, 3, 3).abs().amax(dim=0)  # (18,) -> (2, 3, 3) -> (3, 3)
    assert torch.allclose(sal, expected)
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 4\), got -1"):
        saliency(net, torch.rand(2, 3, 3), target=-1)
