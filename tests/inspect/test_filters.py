"""Filter grids: which layers count as conv, tile counts and layout, colour vs per-channel."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.inspect.filters import conv_layers, filter_grid, find_conv_layer, is_conv_layer


class HandConv(nn.Module):
    """A stand-in for cnnkit's own conv layer: a 4-D weight and a kernel_size, not nn.Conv2d."""

    def __init__(self, in_channels, out_channels, k):
        super().__init__()
        self.kernel_size = (k, k)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, k, k))

    def forward(self, x):
        return F.conv2d(x, self.weight)


def small_net():
    return nn.Sequential(nn.Conv2d(3, 32, 5), nn.ReLU(), HandConv(32, 6, 3), nn.Flatten(),
                         nn.Linear(6, 2))


def test_conv_layers_found_by_type_and_by_shape():
    names = [name for name, _ in conv_layers(small_net())]
    assert names == ["0", "2"]
    assert not is_conv_layer(nn.Linear(3, 3)) and not is_conv_layer(nn.BatchNorm2d(3))
    nested = nn.Module()
    nested.features = small_net()
    assert [name for name, _ in conv_layers(nested)] == ["features.0", "features.2"]


def test_rgb_first_layer_gives_one_colour_tile_per_filter():
    net = small_net()
    grid = filter_grid(net)
    assert grid.layer == "0" and grid.rgb
    assert grid.tiles.shape == (32, 5, 5, 3) and len(grid.labels) == 32
    assert grid.nrows * grid.ncols >= 32 and grid.ncols == 6
    assert grid.tiles.min() == pytest.approx(0.0) and grid.tiles.max() == pytest.approx(1.0)
    w = net[0].weight.detach()
    assert grid.vmin == pytest.approx(w.min().item()) and grid.vmax == pytest.approx(w.max().item())
    # Tile 7, pixel (1, 2), green channel is weight[7, 1, 1, 2], rescaled.
    scaled = (w[7, 1, 1, 2] - w.min()) / (w.max() - w.min())
    assert grid.tiles[7, 1, 2, 1] == pytest.approx(scaled.item(), abs=1e-6)


def test_deeper_layer_gives_one_tile_per_filter_and_input_channel():
    net = small_net()
    grid = filter_grid(net, "2", max_channels=4)
    assert not grid.rgb and grid.weight_shape == (6, 32, 3, 3)
    assert grid.tiles.shape == (6 * 4, 3, 3) and (grid.nrows, grid.ncols) == (6, 4)
    assert grid.labels[5] == "f1 c1"
    assert torch.allclose(torch.from_numpy(grid.tiles[5]), net[2].weight.detach()[1, 1])
    assert grid.vmin == -grid.vmax and grid.vmax == pytest.approx(net[2].weight[:, :4].abs().max().item())


def test_single_channel_layer_is_laid_out_as_a_square():
    grid = filter_grid(nn.Sequential(nn.Conv2d(1, 10, 3)), max_filters=9)
    assert grid.tiles.shape == (9, 3, 3) and (grid.nrows, grid.ncols) == (3, 3)


def test_errors_name_the_layer():
    message = r"layer '1' is not a conv layer of the model; conv layers: \['0', '2'\]"
    with pytest.raises(ValueError, match=message):
        find_conv_layer(small_net(), "1")
    with pytest.raises(ValueError, match=r"has no conv layer"):
        filter_grid(nn.Sequential(nn.Linear(2, 2)))
