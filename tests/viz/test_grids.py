"""Filter, feature-map and image grids: tile counts, value scales, titles, PNGs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnkit.inspect.feature_maps import feature_maps
from cnnkit.inspect.filters import filter_grid
from cnnkit.viz import plot_feature_maps, plot_filters, plot_image_grid, plot_mistakes
from cnnkit.viz._figure import image_for_display, mosaic


def test_mosaic_places_tiles_row_by_row():
    tiles = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)  # (T, h, w)
    image = mosaic(tiles, nrows=2, ncols=3, gap=1)
    assert image.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert np.array_equal(image[3:5, 4:7], tiles[4])  # tile 4: row 1, column 1
    assert np.isnan(image[2]).all() and np.isnan(image[3:, 8:]).all()  # gap and empty slot


def test_rgb_filters(tmp_path, check_png):
    net = nn.Sequential(nn.Conv2d(3, 32, 5))
    fig = plot_filters(filter_grid(net), path=tmp_path / "filters.png")
    check_png(tmp_path / "filters.png")
    ax = fig.axes[0]
    drawn = ax.images[0].get_array()
    assert drawn.shape == (6 * 6 - 1, 6 * 6 - 1, 3)  # 6x6 grid of 5x5 tiles with 1-pixel gaps
    assert "32 filters of 5x5x3" in ax.get_title() and "per RGB channel" in ax.get_title()


def test_grey_filters_have_a_symmetric_colour_bar(tmp_path, check_png):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 6, 3))
    grid = filter_grid(net, "1")
    fig = plot_filters(grid, path=tmp_path / "deep.png")
    check_png(tmp_path / "deep.png")
    low, high = fig.axes[0].images[0].get_clim()
    assert low == -high == pytest.approx(-net[1].weight.abs().max().item())
    assert fig.axes[1].get_ylabel() == "weight value"  # the colour bar
    assert "rows: filters, columns: input channels" in fig.axes[0].get_title()


def test_feature_maps_one_panel_per_layer(tmp_path, check_png):
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    maps = feature_maps(net, torch.rand(1, 12, 12))
    fig = plot_feature_maps(maps, path=tmp_path / "maps.png")
    check_png(tmp_path / "maps.png")
    panels = [ax for ax in fig.axes if ax.get_title()]  # the colour bars have no title
    titles = [ax.get_title() for ax in panels]
    assert titles == ["after conv layer '0': 12x12x6 (6 channels)",
                      "after activation layer '1': 12x12x6 (6 channels)",
                      "after pool layer '2': 6x6x6 (6 channels)"]
    pooled = panels[2].images[0].get_array()
    assert np.nanmax(pooled) == pytest.approx(maps[2].maps.max().item())
    limited = plot_feature_maps(maps, max_channels=2)
    assert "first 2 shown" in limited.axes[0].get_title()
    with pytest.raises(ValueError, match=r"maps is empty"):
        plot_feature_maps([])


def test_image_grid_and_mistakes(tmp_path, check_png):
    images = torch.randint(0, 256, (5, 3, 10, 10), dtype=torch.uint8)
    fig = plot_image_grid(images, [f"#{k}" for k in range(5)], ncols=3, path=tmp_path / "g.png")
    check_png(tmp_path / "g.png")
    assert [ax.get_title() for ax in fig.axes] == ["#0", "#1", "#2", "#3", "#4", ""]
    fig = plot_mistakes(images[:2], [0, 1], [1, 0], [0.93, 0.61], ["cat", "dog"],
                        path=tmp_path / "m.png")
    check_png(tmp_path / "m.png")
    assert [ax.get_title() for ax in fig.axes] == ["true cat\npred dog (93%)", "true dog\npred cat (61%)"]
    with pytest.raises(ValueError, match=r"same length, got 2, 1, 2, 2"):
        plot_mistakes(images[:2], [0], [1, 0], [0.9, 0.6], ["cat", "dog"])
    with pytest.raises(ValueError, match=r"titles has 1 entries for 5 images"):
        plot_image_grid(images, ["x"])


def test_image_for_display_scales():
    array, cmap = image_for_display(torch.tensor([[0, 255]], dtype=torch.uint8))
    assert cmap == "gray" and array.tolist() == [[0.0, 1.0]]
    array, cmap = image_for_display(torch.tensor([[[-2.0, 2.0]]] * 3))  # (3, 1, 2) normalised
    assert cmap is None and array.shape == (1, 2, 3) and array[0, 1].tolist() == [1.0, 1.0, 1.0]
