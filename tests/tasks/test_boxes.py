"""Box ops against hand-computed areas, IoUs and GIoUs."""
import pytest
import torch

from cnnkit.tasks.boxes import (
    box_area,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    elementwise_generalized_box_iou,
    generalized_box_iou,
    xyxy_to_cxcywh,
)


def test_box_area_is_width_times_height_max_exclusive():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 3.0, 6.0, 5.0], [3.0, 3.0, 1.0, 5.0]])
    # 1x1 pixel; 4x2; inverted (x_max < x_min) counts as empty.
    assert box_area(boxes).tolist() == [1.0, 8.0, 0.0]


def test_box_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 11.0, 11.0]])
    iou = box_iou(a, b)
    # a0 vs b0: inter 1*2=2, union 4+4-2=6 -> 1/3; a0 vs b1 identical -> 1; far apart -> 0
    # a1 vs b0: inter 2*2=4, union 16+4-4=16 -> 1/4; a1 vs b1: 4/16; -> 0
    expected = torch.tensor([[1 / 3, 1.0, 0.0], [0.25, 0.25, 0.0]])
    assert iou.shape == (2, 3)
    torch.testing.assert_close(iou, expected)


def test_box_iou_of_empty_sets_has_the_right_shape():
    assert box_iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)


def test_generalized_box_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    giou = generalized_box_iou(a, b)
    # b0: no overlap, union 2, enclosing 3x1=3 -> 0 - (3-2)/3 = -1/3
    # b1: identical -> 1;  b2: contains a, enclosing = b2 -> IoU 1/4, penalty 0 -> 1/4
    torch.testing.assert_close(giou, torch.tensor([[-1 / 3, 1.0, 0.25]]))


def test_elementwise_giou_matches_the_diagonal_of_the_pairwise_one():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(6, 2, generator=g) * 10
    a = torch.cat([xy, xy + torch.rand(6, 2, generator=g) * 5 + 0.1], dim=1)
    xy = torch.rand(6, 2, generator=g) * 10
    b = torch.cat([xy, xy + torch.rand(6, 2, generator=g) * 5 + 0.1], dim=1)
    pairwise = generalized_box_iou(a, b)  # (6, 6)
    torch.testing.assert_close(elementwise_generalized_box_iou(a, b), pairwise.diagonal())


def test_elementwise_giou_rejects_different_shapes():
    with pytest.raises(ValueError, match="same shape"):
        elementwise_generalized_box_iou(torch.zeros(2, 4), torch.zeros(3, 4))


def test_giou_has_a_gradient_when_boxes_do_not_overlap():
    pred = torch.tensor([[2.0, 0.0, 3.0, 1.0]], requires_grad=True)
    elementwise_generalized_box_iou(pred, torch.tensor([[0.0, 0.0, 1.0, 1.0]])).sum().backward()
    assert pred.grad.abs().sum() > 0


def test_cxcywh_round_trip_and_values():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 2.0], [1.0, 2.0, 3.0, 7.0]])
    c = xyxy_to_cxcywh(boxes)
    torch.testing.assert_close(c, torch.tensor([[2.0, 1.0, 4.0, 2.0], [2.0, 4.5, 2.0, 5.0]]))
    torch.testing.assert_close(cxcywh_to_xyxy(c), boxes)


def test_clip_boxes_clips_x_to_width_and_y_to_height():
    boxes = torch.tensor([[-2.0, 1.0, 9.0, 5.0], [1.0, -1.0, 3.0, 2.0]])
    clipped = clip_boxes(boxes, (4, 8))
    assert clipped.tolist() == [[0.0, 1.0, 8.0, 4.0], [1.0, 0.0, 3.0, 2.0]]


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"boxes must have shape \(\.\.\., 4\).*\(2, 3\)"):
        box_area(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="boxes1 must be a torch.Tensor"):
        box_iou([[0, 0, 1, 1]], torch.zeros(1, 4))
    with pytest.raises(ValueError, match="size"):
        clip_boxes(torch.zeros(1, 4), (0, 5))
    with pytest.raises(TypeError, match="size"):
        clip_boxes(torch.zeros(1, 4), "4x8")


def test_batched_box_iou_is_box_iou_image_by_image():
    from cnnkit.tasks.boxes import batched_box_iou

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3, 6, 2, generator=g) * 20
    a = torch.cat([xy, xy + torch.rand(3, 6, 2, generator=g) * 10], dim=2)  # (3, 6, 4)
    b = a[:, :4].flip(1) + 1.5  # (3, 4, 4)
    got = batched_box_iou(a, b)
    assert got.shape == (3, 6, 4)
    for i in range(3):
        assert torch.equal(got[i], box_iou(a[i], b[i]))
    assert (got > 0).any() and (got < 1).all()
    with pytest.raises(ValueError, match=r"\(B, N, 4\) and \(B, M, 4\) with the same B"):
        batched_box_iou(a, b[:2])
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        batched_box_iou(a[0], b[0])


def test_the_iou_in_numpy_is_the_iou_in_torch_bit_for_bit():
    # padded_nms computes it in NumPy on the CPU: the same float32 operations in the same order
    import numpy as np

    from cnnkit.tasks.boxes import _iou

    g = torch.Generator().manual_seed(0)
    a = (torch.rand(8, 30, 4, generator=g) * 50).round(decimals=1)  # many inverted, some empty
    b = torch.cat([a[:, :10], torch.rand(8, 15, 4, generator=g) * 50], dim=1)  # and equal ones
    want = _iou(a, b)  # (8, 30, 25)
    got = _iou(a.numpy(), b.numpy())
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert np.array_equal(got, want.numpy())
    assert (want == 0).any() and (want == 1).any() and ((want > 0) & (want < 1)).any()
