"""Target-preserving augmentations: boxes and masks move with the image (hand-computed cases)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.augment.color import ColorJitter
from cnnkit.augment.targets import (ColorOnly, TargetFlip, TargetScale, TargetShift,
                                    parse_task_augment)


def _marked_image(h=8, w=8, row=2, col=3):
    x = torch.zeros(1, 1, h, w)
    x[0, 0, row, col] = 1.0
    return x


def test_flip_moves_localize_box_and_image():
    x = _marked_image()
    t = {"labels": torch.tensor([4]), "boxes": torch.tensor([[1.0, 2.0, 3.0, 5.0]])}
    out, got = TargetFlip(p=1.0)(x, t)
    assert got["boxes"].tolist() == [[5.0, 2.0, 7.0, 5.0]]
    assert got["labels"].tolist() == [4]
    assert out[0, 0, 2, 8 - 1 - 3] == 1.0


def test_vflip_moves_box_and_mask_pixel():
    t = {"labels": torch.tensor([0]), "boxes": torch.tensor([[1.0, 2.0, 3.0, 5.0]])}
    _, got = TargetFlip(vertical=True, p=1.0)(_marked_image(), t)
    assert got["boxes"].tolist() == [[1.0, 3.0, 3.0, 6.0]]
    masks = torch.zeros(1, 8, 8, dtype=torch.uint8)
    masks[0, 2, 3] = 7
    _, got = TargetFlip(vertical=True, p=1.0)(_marked_image(), {"masks": masks})
    assert got["masks"][0, 5, 3] == 7 and int((got["masks"] == 7).sum()) == 1


def test_flip_keeps_detect_padding_zero():
    t = {"labels": torch.tensor([[1, -1]]), "boxes": torch.tensor([[[0.0, 0.0, 2.0, 2.0],
                                                                   [0.0, 0.0, 0.0, 0.0]]]),
         "ignore": torch.tensor([[False, False]])}
    _, got = TargetFlip(p=1.0)(torch.rand(1, 3, 8, 10), t)
    assert got["boxes"].tolist() == [[[8.0, 0.0, 10.0, 2.0], [0.0, 0.0, 0.0, 0.0]]]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.booleans())
def test_flip_twice_is_identity(seed, vertical):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 2, 5, 7, generator=g)
    boxes = torch.rand(3, 4, generator=g) * 3
    boxes[:, 2:] += boxes[:, :2]
    t = {"labels": torch.arange(3), "boxes": boxes}
    flip = TargetFlip(vertical=vertical, p=1.0)
    x2, t2 = flip(*flip(x, t))
    assert torch.equal(x2, x) and torch.allclose(t2["boxes"], boxes, atol=1e-5)
    masks = torch.randint(0, 4, (3, 5, 7), generator=g, dtype=torch.uint8)
    _, m2 = flip(*flip(x, {"masks": masks}))
    assert torch.equal(m2["masks"], masks)


def test_shift_moves_box_mask_and_image_by_the_drawn_offset():
    # With padding 2, seed 3 draws a non-zero shift (dy, dx); the marked pixel shows it.
    x = _marked_image()
    masks = torch.zeros(1, 8, 8, dtype=torch.uint8)
    masks[0, 2, 3] = 7
    crop = TargetShift(2, seed=3)
    out, got = crop(x, {"masks": masks})
    row, col = (out[0, 0] == 1).nonzero()[0].tolist()
    dy, dx = row - 2, col - 3
    assert (dy, dx) != (0, 0)
    assert got["masks"][0, row, col] == 7 and int((got["masks"] == 7).sum()) == 1
    # Uncovered pixels are ignore (255): |dy| rows and |dx| columns.
    uncovered = 8 * abs(dy) + 8 * abs(dx) - abs(dy) * abs(dx)
    assert int((got["masks"] == 255).sum()) == uncovered
    # The same seed moves a (detect) box by the same offset.
    t = {"labels": torch.tensor([[2]]), "boxes": torch.tensor([[[2.0, 2.0, 5.0, 6.0]]]),
         "ignore": torch.tensor([[False]])}
    _, got = TargetShift(2, seed=3)(x, t)
    assert got["boxes"].tolist() == [[[2.0 + dx, 2.0 + dy, 5.0 + dx, 6.0 + dy]]]


def test_translate_fraction_clips_and_drops_detect_boxes():
    # Shift of up to round(0.5 * 8) = 4 px; p=1. Check each box against the drawn shift.
    n = 32
    x = torch.zeros(n, 1, 8, 8)
    x[:, 0, 0, 0] = 1.0  # marker at the top-left to read the shift back
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 6.0, 6.0], [0.0, 0.0, 0.0, 0.0]])
    t = {"labels": torch.tensor([[1, 2, -1]]).repeat(n, 1), "boxes": boxes.repeat(n, 1, 1),
         "ignore": torch.tensor([[True, False, False]]).repeat(n, 1)}
    out, got = TargetShift(0.5, name="translate", min_visible=0.5, seed=0)(x, t)
    dropped_some = False
    for i in range(n):
        found = (out[i, 0] == 1).nonzero()
        if len(found) == 0:  # marker shifted out: only negative shifts do that
            continue
        dy, dx = found[0].tolist()
        # Box 1 (2..6 on both axes) with shifts in 0..4: inside unless it moves past 8.
        x1, y1, x2, y2 = 2 + dx, 2 + dy, min(6 + dx, 8), min(6 + dy, 8)
        share = (x2 - x1) * (y2 - y1) / 16
        if share >= 0.5:
            assert got["boxes"][i, 1].tolist() == [x1, y1, x2, y2]
            assert got["labels"][i, 1] == 2
        else:
            dropped_some = True
            assert got["labels"][i, 1] == -1 and got["boxes"][i, 1].tolist() == [0, 0, 0, 0]
        # Box 0 at the corner moves right/down fully inside; padding stays padding.
        assert got["boxes"][i, 0].tolist() == [dx, dy, dx + 2, dy + 2]
        assert bool(got["ignore"][i, 0])
        assert got["labels"][i, 2] == -1 and got["boxes"][i, 2].tolist() == [0, 0, 0, 0]
    assert dropped_some
    kept = got["labels"] >= 0
    assert bool((~got["ignore"][~kept]).all())  # dropped boxes are not ignore regions


def test_shift_never_loses_the_localize_box():
    n = 64
    boxes = torch.tensor([[0.0, 1.0, 3.0, 8.0]]).repeat(n, 1)  # touches left and bottom edges
    t = {"labels": torch.zeros(n, dtype=torch.long), "boxes": boxes}
    x = torch.zeros(n, 1, 8, 8)
    x[:, 0, 4, 4] = 1.0
    out, got = TargetShift(3, seed=0)(x, t)
    b = got["boxes"]
    assert bool((b[:, 0] >= 0).all() and (b[:, 2] <= 8).all())
    assert bool((b[:, 1] >= 0).all() and (b[:, 3] <= 8).all())
    assert torch.allclose(b[:, 2] - b[:, 0], torch.full((n,), 3.0))  # size kept, never clipped
    # The image moved by the same (clamped) shift as the box.
    for i in range(n):
        row, col = (out[i, 0] == 1).nonzero()[0].tolist()
        assert b[i].tolist() == [col - 4, 1 + row - 4, 3 + col - 4, 8 + row - 4]
    assert bool((b[:, 0] > 0).any())  # shifts do happen (right, the only free side)


def test_scale_zoom_in_moves_box_about_the_centre_and_clamps_localize():
    t = {"labels": torch.tensor([[3]]), "boxes": torch.tensor([[[2.0, 2.0, 4.0, 6.0]]]),
         "ignore": torch.tensor([[False]])}
    _, got = TargetScale((2.0, 2.0))(torch.rand(1, 1, 8, 8), t)
    # x' = 4 + 2 (x - 4): 2 -> 0, 4 -> 4, 6 -> 8.
    assert got["boxes"].tolist() == [[[0.0, 0.0, 4.0, 8.0]]]
    loc = {"labels": torch.tensor([0]), "boxes": torch.tensor([[1.0, 2.0, 3.0, 5.0]])}
    _, got = TargetScale((2.0, 2.0))(torch.rand(1, 1, 8, 8), loc)
    # Largest factor keeping x_min = 1 inside: 4 / 3; then 1 -> 0, 3 -> 8/3, 2 -> 4/3, 5 -> 16/3.
    assert torch.allclose(got["boxes"], torch.tensor([[0.0, 4 / 3, 8 / 3, 16 / 3]]))


def test_scale_zoom_out_masks_use_nearest_and_ignore_border():
    masks = torch.full((1, 8, 8), 3, dtype=torch.uint8)
    _, got = TargetScale((0.5, 0.5))(torch.rand(1, 1, 8, 8), {"masks": masks})
    m = got["masks"][0]
    assert m.dtype == torch.uint8
    assert bool((m[2:6, 2:6] == 3).all())
    assert int((m == 255).sum()) == 64 - 16
    assert set(m.unique().tolist()) == {3, 255}


def test_color_op_leaves_targets_identical():
    boxes = torch.tensor([[[1.0, 1.0, 4.0, 4.0]]])
    t = {"labels": torch.tensor([[1]]), "boxes": boxes.clone(), "ignore": torch.tensor([[False]])}
    x = torch.rand(1, 3, 8, 8)
    out, got = ColorOnly(ColorJitter(0.5, 0.5, 0.5, seed=0))(x, t)
    assert got is t and torch.equal(got["boxes"], boxes)
    assert not torch.equal(out, x)
    masks = torch.randint(0, 5, (2, 8, 8), dtype=torch.uint8)
    _, got = parse_task_augment("jitter(0.3),grayscale(1)", "segment")(torch.rand(2, 3, 8, 8),
                                                                      {"masks": masks.clone()})
    assert torch.equal(got["masks"], masks)


def test_parse_builds_pipeline_and_runs_per_task():
    aug = parse_task_augment("flip,vflip,crop(2),translate(0.1),scale(0.1),jitter(0.2),grayscale",
                             "detect", seed=1)
    assert aug.to_spec() == ("flip,vflip,crop(2),translate(0.1),scale(0.9,1.1),"
                             "jitter(0.2,0.2,0.2,0),grayscale(0.1)")
    t = {"labels": torch.tensor([[1, -1]]), "boxes": torch.tensor([[[1.0, 1.0, 5.0, 5.0],
                                                                   [0.0, 0.0, 0.0, 0.0]]]),
         "ignore": torch.zeros(1, 2, dtype=torch.bool)}
    x, got = aug(torch.rand(1, 3, 16, 16), t)
    assert x.shape == (1, 3, 16, 16) and got["boxes"].shape == (1, 2, 4)
    assert len(parse_task_augment("none", "segment")) == 0


@pytest.mark.parametrize("op", ["mixup", "cutmix(1)", "rotate(10)", "erase", "affine(5)"])
def test_parse_refuses_ops_that_do_not_move_targets(op):
    with pytest.raises(ValueError, match=rf"{op.split('(')[0]}.*not allowed.*allowed: flip"):
        parse_task_augment(f"flip,{op}", "localize")


def test_parse_errors():
    with pytest.raises(ValueError, match="task must be one of"):
        parse_task_augment("flip", "classify")
    with pytest.raises(ValueError, match="usage: crop"):
        parse_task_augment("crop", "segment")
    with pytest.raises(TypeError, match="string"):
        parse_task_augment(None, "segment")
    with pytest.raises(ValueError, match="min_visible"):
        parse_task_augment("crop(2,min_visible=2)", "detect")
