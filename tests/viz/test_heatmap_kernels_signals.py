"""Heatmaps, receptive fields, kernel before/after, convolution matrix and signal pictures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.inspect.conv_matrix import conv_as_matrix
from cnnkit.inspect.kernels import apply_kernel, get_kernel
from cnnkit.viz import (plot_conv_matrix, plot_convolution, plot_heatmap, plot_kernel_result,
                        plot_receptive_field, plot_signal_examples)


def test_heatmap(tmp_path, check_png):
    heat = torch.zeros(16, 16)
    heat[4:8, 4:8] = 1.0
    fig = plot_heatmap(torch.rand(3, 16, 16), heat, title="Grad-CAM for 'cat'", path=tmp_path / "h.png")
    check_png(tmp_path / "h.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["input image", "Grad-CAM for 'cat'", "overlay (red = most important)"]
    assert np.array_equal(fig.axes[1].images[0].get_array(), heat.numpy())
    with pytest.raises(ValueError, match=r"heatmap shape \(8, 8\) must equal the image's"):
        plot_heatmap(torch.rand(3, 16, 16), torch.rand(8, 8))


def test_receptive_field(tmp_path, check_png):
    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask[5:10, 6:11] = True
    fig = plot_receptive_field(torch.rand(1, 20, 20), (4, 5, 11, 12), mask=mask, path=tmp_path / "rf.png")
    check_png(tmp_path / "rf.png")
    ax = fig.axes[0]
    rect = ax.patches[0]
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (4.5, 3.5, 7, 7)
    assert "rows 4..10, columns 5..11" in ax.get_title() and "25 pixels" in ax.get_title()
    # A box reaching into the zero padding widens the view instead of failing.
    fig = plot_receptive_field(torch.rand(1, 20, 20), (-3, -3, 4, 4))
    assert fig.axes[0].get_xlim()[0] <= -3.5
    with pytest.raises(ValueError, match=r"box must be \(top, left, bottom, right\)"):
        plot_receptive_field(torch.rand(1, 20, 20), (1, 2, 3))
    with pytest.raises(ValueError, match=r"box must have bottom > top"):
        plot_receptive_field(torch.rand(1, 20, 20), (5, 5, 5, 9))


def test_kernel_result(tmp_path, check_png):
    image = torch.zeros(12, 12)
    image[:, 6:] = 1.0
    out = apply_kernel(image, "sobel-x", stride=1, padding=1)
    fig = plot_kernel_result(image, out, get_kernel("sobel-x"), name="sobel-x", padding=1,
                             path=tmp_path / "k.png")
    check_png(tmp_path / "k.png")
    assert [t.get_text() for t in fig.axes[1].texts] == ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    assert np.array_equal(fig.axes[2].images[0].get_array(), out.numpy())
    assert fig.axes[2].get_title() == "after: 12x12 (stride 1, padding 1)"


def test_conv_matrix_picture(tmp_path, check_png):
    matrix, out_shape = conv_as_matrix(get_kernel("edge"), (1, 5, 5))
    fig = plot_conv_matrix(matrix, (1, 5, 5), out_shape, path=tmp_path / "m.png")
    check_png(tmp_path / "m.png")
    # 9 outputs x 5 non-zero taps out of 9 * 25 entries; two distinct values (-1 and 4).
    assert "9x25 matrix: 20% non-zero, 2 distinct weights" in fig.axes[0].get_title()


def test_signal_pictures(tmp_path, check_png):
    fig = plot_convolution([1, 2, 3], [1, 1], path=tmp_path / "c.png")
    check_png(tmp_path / "c.png")
    result_line = fig.axes[2].containers[0].markerline
    assert list(result_line.get_ydata()) == [1, 3, 5, 3]
    fig = plot_signal_examples(path=tmp_path / "s.png")
    check_png(tmp_path / "s.png")
    heights = [p.get_height() for p in fig.axes[1].patches]
    assert sum(heights) == pytest.approx(1.0) and np.argmax(heights) == 5  # sum 7
