"""Classic kernels: the numbers the tutorials promise, output sizes, and the frozen layer."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.inspect.kernels import KERNELS, apply_kernel, get_kernel, kernel_bank_conv, kernel_names


def test_registry_values_match_the_tutorials():
    assert torch.equal(get_kernel("edge"), torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]))
    assert torch.equal(get_kernel("sharpen"), torch.tensor([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]))
    assert get_kernel("edge-8")[1, 1] == 8 and get_kernel("edge-8").sum() == 0
    assert torch.allclose(get_kernel("box-blur"), torch.full((3, 3), 1 / 9))
    for name in ("box-blur", "gaussian-blur", "gaussian-blur-5", "identity", "sharpen"):
        assert get_kernel(name).sum().item() == pytest.approx(1.0), name  # brightness kept
    for name in ("edge", "edge-8", "sobel-x", "sobel-y"):
        assert get_kernel(name).sum().item() == 0, name  # flat regions give 0
    assert get_kernel("curve").shape == (7, 7)
    assert set(kernel_names()) == set(KERNELS) and kernel_names() == sorted(kernel_names())


def test_sobel_x_on_a_vertical_step_edge():
    height = 2.5
    image = torch.zeros(8, 10)
    image[:, 5:] = height  # dark left half, bright right half: a vertical edge between x=4 and 5
    out = apply_kernel(image, "sobel-x")  # valid: (8, 10) -> (6, 8); out[:, j] centred at x=j+1
    centres = torch.arange(8) + 1
    on_edge = (centres == 4) | (centres == 5)
    # Weights (1, 2, 1) on the bright column: 4 * step height, positive for dark -> bright.
    assert torch.allclose(out[:, on_edge], torch.full((6, 2), 4 * height))
    assert torch.count_nonzero(out[:, ~on_edge]) == 0
    # Sobel-y sees no horizontal edge here at all.
    assert torch.count_nonzero(apply_kernel(image, "sobel-y")) == 0


def test_sobel_sign_flips_for_a_bright_to_dark_edge():
    image = torch.zeros(5, 6)
    image[:, :3] = 1.0
    assert apply_kernel(image, "sobel-x").min().item() == pytest.approx(-4.0)


def test_constant_and_ramp_images():
    constant = torch.full((3, 9, 9), 0.7)
    assert torch.allclose(apply_kernel(constant, "box-blur"), torch.full((3, 7, 7), 0.7))
    assert torch.allclose(apply_kernel(constant, "sharpen"), torch.full((3, 7, 7), 0.7))
    assert torch.allclose(apply_kernel(constant, "edge"), torch.zeros(3, 7, 7))
    ramp = torch.arange(10.0).repeat(10, 1) * 0.3 + torch.arange(10.0)[:, None] * 0.1  # (10, 10)
    assert torch.allclose(apply_kernel(ramp, "edge"), torch.zeros(8, 8), atol=1e-5)
    assert torch.allclose(apply_kernel(ramp, "edge-8"), torch.zeros(8, 8), atol=1e-5)
    # With zero padding the border of a constant image is no longer flat: the Laplacian sees it.
    padded = apply_kernel(constant[0], "edge", padding=1)
    assert padded.shape == (9, 9) and padded[0, 0].item() == pytest.approx(2 * 0.7)
    assert torch.allclose(padded[1:-1, 1:-1], torch.zeros(7, 7), atol=1e-6)


def test_uint8_is_scaled_to_unit_range():
    image = torch.full((6, 6), 255, dtype=torch.uint8)
    assert torch.allclose(apply_kernel(image, "identity"), torch.ones(4, 4))


@pytest.mark.parametrize("size,kernel,stride,padding", [
    (28, "edge", 1, 0), (28, "edge", 2, 1), (32, "gaussian-blur-5", 1, 2), (7, "curve", 1, 0),
    (9, "sobel-x", 3, 0), (10, "box-blur", 2, 0),
])
def test_output_size_formula(size, kernel, stride, padding):
    k = get_kernel(kernel).shape[0]
    out = apply_kernel(torch.rand(2, size, size), kernel, stride=stride, padding=padding)
    expected = (size - k + 2 * padding) // stride + 1
    assert out.shape == (2, expected, expected)


def test_same_padding_keeps_the_size_and_matches_conv2d():
    image = torch.rand(3, 11, 13)
    out = apply_kernel(image, "sharpen", padding="same")
    weight = get_kernel("sharpen").expand(3, 1, 3, 3)
    assert torch.allclose(out, F.conv2d(image[None], weight, padding=1, groups=3)[0])
    assert apply_kernel(image, "sharpen", padding="valid").shape == (3, 9, 11)


def test_apply_kernel_is_cross_correlation():
    image = torch.zeros(5, 5)
    image[2, 2] = 1.0  # an impulse returns the kernel flipped (true convolution would not flip)
    out = apply_kernel(image, "sobel-x", padding=1)
    assert torch.equal(out[1:4, 1:4], get_kernel("sobel-x").flip(0, 1))


def test_apply_kernel_errors():
    with pytest.raises(ValueError, match=r"kernel 'sobel' is unknown; did you mean 'sobel-y' or "
                                         r"'sobel-x'\? choose one of"):
        apply_kernel(torch.rand(5, 5), "sobel")
    with pytest.raises(ValueError, match=r"kernel 'blur' is unknown; did you mean 'box-blur'"):
        apply_kernel(torch.rand(5, 5), "blur")
    with pytest.raises(ValueError, match=r"kernel 'zzz' is unknown; choose one of"):
        apply_kernel(torch.rand(5, 5), "zzz")
    with pytest.raises(ValueError, match=r"padding must be an int >= 0, 'same' or 'valid', got 'sme'"):
        apply_kernel(torch.rand(5, 5), "edge", padding="sme")
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1"):
        apply_kernel(torch.rand(5, 5), "edge", padding="same", stride=2)
    with pytest.raises(ValueError, match=r"does not fit the image"):
        apply_kernel(torch.rand(5, 5), "curve")
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(C, H, W\)"):
        apply_kernel(torch.rand(1, 1, 5, 5), "edge")
    with pytest.raises(ValueError, match=r"stride must be >= 1, got 0"):
        apply_kernel(torch.rand(5, 5), "edge", stride=0)
    with pytest.raises(ValueError, match=r"kernel must be 2-D"):
        apply_kernel(torch.rand(5, 5), [1.0, 2.0])


def test_custom_array_kernel():
    out = apply_kernel(torch.ones(4, 4), [[1.0, 1.0]])
    assert torch.allclose(out, torch.full((4, 3), 2.0))


def test_kernel_bank_conv_is_a_frozen_first_layer():
    conv = kernel_bank_conv(["sobel-x", "sobel-y", "curve"], in_channels=3)
    assert conv.weight.shape == (3, 3, 7, 7) and not conv.weight.requires_grad and conv.bias is None
    grey = torch.rand(12, 12)
    rgb = grey.expand(1, 3, 12, 12).clone().requires_grad_(True)
    out = conv(rgb)  # an RGB image whose channels are all the grey image
    assert out.shape == (1, 3, 12, 12)
    assert torch.allclose(out[0, 0], apply_kernel(grey, "sobel-x", padding="same"), atol=1e-5)
    assert torch.allclose(out[0, 2], apply_kernel(grey, "curve", padding="same"), atol=1e-4)
    out.sum().backward()  # gradients flow through to the input, not into the frozen weights
    assert conv.weight.grad is None and rgb.grad is not None
    with pytest.raises(ValueError, match=r"names must be a non-empty list"):
        kernel_bank_conv([])
