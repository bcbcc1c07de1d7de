import pytest
import torch
import torch.nn.functional as F

from cnnkit.layers.upsample import ConvTranspose, Upsample


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upsample_matches_interpolate(mode, scale):
    x = torch.randn(2, 3, 5, 4, requires_grad=True)
    layer = Upsample(scale, mode)
    out = layer(x)
    kw = {} if mode == "nearest" else {"align_corners": False}
    ref = F.interpolate(x, scale_factor=scale, mode=mode, **kw)
    assert torch.allclose(out, ref)
    assert tuple(out.shape[1:]) == layer.compute_output_shape((3, 5, 4))
    (g,) = torch.autograd.grad(out.sum(), x)
    (gr,) = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g, gr)


@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (3, 1, 1, 0)])
def test_convtranspose_matches_functional(k, s, p, op):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    layer = ConvTranspose(4, k, stride=s, padding=p, output_padding=op)
    out = layer(x)
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, s, p, op)
    assert torch.allclose(out, ref)
    assert tuple(out.shape[1:]) == layer.compute_output_shape((3, 5, 6))
    out.square().sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_spec_and_errors():
    assert Upsample(2).to_spec() == "upsample(2)"
    assert Upsample(2, "bilinear").to_spec() == "upsample(2,bilinear)"
    assert ConvTranspose(8, 2, 2).to_spec() == "convtranspose(8,2,2)"
    with pytest.raises(ValueError, match="mode"):
        Upsample(2, "cubic")
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose(4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="image volume"):
        Upsample(2).compute_output_shape((10,))
