"""AnnotatedData / AnnotatedSplits: validation, targets, subset and seeded split."""
import pytest
import torch

from cnnkit.data.annotated import TASKS, AnnotatedData, AnnotatedSplits
from cnnkit.errors import DataError


def _localize(n=10, size=16):
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    boxes = torch.tensor([[1.0, 2.0, 5.0, 9.0]]).repeat(n, 1)
    return AnnotatedData("localize", images, ["a", "b", "c"], labels=labels, boxes=boxes)


def _segment(n=6):
    masks = torch.zeros(n, 8, 8, dtype=torch.uint8)
    masks[:, 2:4, 2:4] = 1
    masks[0, 0, 0] = 255
    return AnnotatedData("segment", torch.zeros(n, 1, 8, 8, dtype=torch.uint8),
                         ["background", "x"], masks=masks)


def _detect(n=4):
    labels = torch.full((n, 3), -1)
    labels[:, 0] = 1
    boxes = torch.zeros(n, 3, 4)
    boxes[:, 0] = torch.tensor([0.0, 0.0, 8.0, 8.0])
    return AnnotatedData("detect", torch.zeros(n, 3, 8, 8, dtype=torch.uint8), ["a", "b"],
                         labels=labels, boxes=boxes)


def test_tasks_and_properties():
    assert TASKS == ("classify", "localize", "segment", "detect")
    data = _localize()
    assert len(data) == 10 and data.num_classes == 3 and data.input_shape == (1, 16, 16)
    assert set(data.targets()) == {"labels", "boxes"}
    assert set(_segment().targets()) == {"masks"}
    det = _detect()
    assert set(det.targets()) == {"labels", "boxes", "ignore"}
    assert det.ignore.dtype == torch.bool and not det.ignore.any()
    assert data.names == [str(i) for i in range(10)]


def test_subset_keeps_targets_and_names():
    data = _localize()
    part = data.subset([3, 1])
    assert part.labels.tolist() == [0, 1] and part.names == ["3", "1"]
    assert torch.equal(part.boxes, data.boxes[[3, 1]])
    assert _detect().subset(range(2)).labels.shape == (2, 3)
    with pytest.raises(IndexError):
        data.subset([10])


def test_split_is_seeded_and_disjoint():
    data = _localize(20)
    a, b = data.split(0.25, seed=3)
    a2, b2 = data.split(0.25, seed=3)
    assert a.names == a2.names and b.names == b2.names and len(b) == 5
    assert set(a.names).isdisjoint(b.names) and len(a) + len(b) == 20
    assert data.split(0.25, seed=4)[1].names != b.names
    with pytest.raises(ValueError, match="fraction"):
        data.split(1.5)


@pytest.mark.parametrize("box, match", [
    ([1.0, 2.0, 17.0, 9.0], "not inside"),
    ([5.0, 2.0, 5.0, 9.0], "x_max > x_min"),
    ([-1.0, 2.0, 5.0, 9.0], "not inside"),
])
def test_bad_boxes_are_rejected(box, match):
    data = _localize(2)
    boxes = data.boxes.clone()
    boxes[1] = torch.tensor(box)
    with pytest.raises(DataError, match=match):
        AnnotatedData("localize", data.images, data.class_names, labels=data.labels, boxes=boxes,
                      names=["p.png", "q.png"])
    with pytest.raises(DataError, match="'q.png'"):
        AnnotatedData("localize", data.images, data.class_names, labels=data.labels, boxes=boxes,
                      names=["p.png", "q.png"])


def test_detect_padding_boxes_are_not_checked_but_real_ones_are():
    det = _detect()
    boxes = det.boxes.clone()
    boxes[:, 0, 2] = 20.0
    with pytest.raises(DataError, match="not inside"):
        AnnotatedData("detect", det.images, det.class_names, labels=det.labels, boxes=boxes)


def test_bad_dtypes_shapes_and_values():
    data = _localize(2)
    with pytest.raises(DataError, match="uint8"):
        AnnotatedData("localize", data.images.float(), data.class_names, labels=data.labels,
                      boxes=data.boxes)
    with pytest.raises(DataError, match="labels must be"):
        AnnotatedData("localize", data.images, data.class_names, labels=data.labels.int(),
                      boxes=data.boxes)
    with pytest.raises(DataError, match="label 5"):
        AnnotatedData("localize", data.images, data.class_names, labels=torch.tensor([0, 5]),
                      boxes=data.boxes)
    with pytest.raises(DataError, match="needs boxes"):
        AnnotatedData("localize", data.images, data.class_names, labels=data.labels)
    with pytest.raises(DataError, match="takes no masks"):
        AnnotatedData("localize", data.images, data.class_names, labels=data.labels,
                      boxes=data.boxes, masks=torch.zeros(2, 16, 16, dtype=torch.uint8))
    with pytest.raises(DataError, match="task must be"):
        AnnotatedData("classify", data.images, data.class_names)
    seg = _segment(2)
    masks = seg.masks.clone()
    masks[1, 5, 5] = 2
    with pytest.raises(DataError, match="value 2.*2 classes"):
        AnnotatedData("segment", seg.images, seg.class_names, masks=masks)
    with pytest.raises(DataError, match="masks must be"):
        AnnotatedData("segment", seg.images, seg.class_names, masks=masks[:, :4])


def test_splits_agree():
    data = _localize(10)
    train, val = data.split(0.2)
    splits = AnnotatedSplits(train, val)
    assert splits.task == "localize" and splits.input_shape == (1, 16, 16)
    assert splits.class_names == ["a", "b", "c"] and set(splits.parts()) == {"train", "val"}
    with pytest.raises(DataError, match="task"):
        AnnotatedSplits(train, _segment())
