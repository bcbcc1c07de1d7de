"""Class-aware NMS: hand cases, and the vectorised version against the plain-Python reference."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.tasks.nms import batched_nms, nms_reference


def test_overlapping_box_of_the_same_class_is_suppressed():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 10, 10], [20.0, 20, 30, 30]])
    scores = torch.tensor([0.8, 0.9, 0.7])
    # IoU(box0, box1) = 81/100 > 0.5: box1 has the higher score, so box0 goes.
    kept = batched_nms(boxes, scores, torch.zeros(3, dtype=torch.long), 0.5)
    assert kept.tolist() == [1, 2]
    assert kept.dtype == torch.long


def test_different_classes_do_not_suppress_each_other():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    kept = batched_nms(boxes, torch.tensor([0.5, 0.9]), torch.tensor([3, 1]), 0.5)
    assert kept.tolist() == [1, 0]


def test_threshold_is_strict_and_suppression_is_greedy():
    # A chain: b overlaps a and c; a and c only touch (IoU 0).
    boxes = torch.tensor([[0.0, 0, 10, 10], [5.0, 0, 15, 10], [10.0, 0, 20, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.zeros(3, dtype=torch.long)
    # IoU(a, b) = 50 / 150 = 1/3: at threshold 0.3 b is dropped, and c (which only b touched) stays.
    assert batched_nms(boxes, scores, classes, 0.3).tolist() == [0, 2]
    # A threshold just above 1/3 keeps everything.
    assert batched_nms(boxes, scores, classes, 0.34).tolist() == [0, 1, 2]
    # Identical boxes have IoU 1, which is not > 1: threshold 1 keeps both.
    same = torch.tensor([[0.0, 0, 4, 4], [0.0, 0, 4, 4]])
    kept = batched_nms(same, torch.tensor([0.2, 0.1]), torch.zeros(2, dtype=torch.long), 1.0)
    assert kept.tolist() == [0, 1]


def test_empty_input():
    kept = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert kept.shape == (0,)


def test_bad_inputs_raise_naming_the_argument():
    boxes = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="scores must have shape"):
        batched_nms(boxes, torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        batched_nms(boxes, torch.zeros(2), torch.zeros(2, dtype=torch.long), 1.5)
    with pytest.raises(ValueError, match=r"boxes must have shape \(K, 4\)"):
        batched_nms(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, dtype=torch.long), 0.5)


_box = st.tuples(
    st.integers(0, 30), st.integers(0, 30), st.integers(1, 15), st.integers(1, 15)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(_box, st.integers(0, 20), st.integers(0, 2)), min_size=0, max_size=25),
    threshold=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0]),
)
def test_batched_nms_matches_the_reference(data, threshold):
    boxes = [d[0] for d in data]
    scores = [d[1] / 20 for d in data]  # few distinct values, so ties are common
    classes = [d[2] for d in data]
    kept = batched_nms(
        torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),  # (K, 4), also when K = 0
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(classes, dtype=torch.long),
        threshold,
    )
    assert kept.tolist() == nms_reference(boxes, scores, classes, threshold)


def test_kept_detections_drops_padding_then_suppresses_per_class():
    from cnnkit.tasks.nms import kept_detections

    boxes = torch.tensor([[[0., 0., 10., 10.], [1., 1., 11., 11.], [0., 0., 10., 10.],
                           [50., 50., 60., 60.]]])  # (1, D=4, 4)
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.0]])  # the last is padding (score 0)
    labels = torch.tensor([[1, 1, 2, 1]])
    kept = kept_detections(boxes, scores, labels, 0.5)[0]
    # box 1 overlaps box 0 (same class, IoU 0.68): suppressed; box 2 is another class: kept
    assert kept["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert kept["labels"].tolist() == [1, 2]
    every = kept_detections(boxes, scores, labels, 0.5, nms=False)[0]
    assert every["scores"].tolist() == pytest.approx([0.9, 0.8, 0.7])


# ------------------------------------------------------------------ padded_nms: a batch at once
_image = st.lists(st.tuples(_box, st.integers(0, 20), st.integers(0, 2)), min_size=0, max_size=12)


def _padded(images, d: int):
    """Per-image (box, score step, class) lists -> padded (N, d, 4), (N, d), (N, d) tensors
    whose padding has score 0 and random-looking boxes (the padding must never be kept)."""
    boxes = torch.tensor([[7.0, 7, 9, 9]]).repeat(len(images), d, 1)
    scores = torch.zeros(len(images), d, dtype=torch.float64)
    labels = torch.zeros(len(images), d, dtype=torch.long)
    for i, image in enumerate(images):
        for j, (box, score, cls) in enumerate(image):
            boxes[i, j] = torch.tensor(box, dtype=torch.float32)
            scores[i, j] = score / 20  # few distinct values, so ties are common; 0 is padding
            labels[i, j] = cls
    return boxes.double(), scores, labels


@settings(max_examples=60, deadline=None)
@given(images=st.lists(_image, min_size=1, max_size=5),
       threshold=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0]), on_host=st.booleans())
def test_padded_nms_matches_the_reference_image_by_image(images, threshold, on_host):
    from unittest import mock

    from cnnkit.tasks import nms

    boxes, scores, labels = _padded(images, d=12)
    # on_host False: the torch ops (the GPU's path), run on the CPU
    with mock.patch.object(nms, "NUMPY_ON_CPU", on_host):
        order, kept = nms.padded_nms(boxes, scores, labels, threshold)
    assert order.shape == kept.shape == (len(images), 12) and kept.dtype == torch.bool
    for i in range(len(images)):
        valid = (scores[i] > 0).nonzero().flatten()  # the reference sees only the real boxes
        want = nms_reference(boxes[i][valid], scores[i][valid], labels[i][valid], threshold)
        assert order[i][kept[i]].tolist() == valid[want].tolist()


def test_padded_nms_is_the_same_as_batched_nms_on_a_detectors_top_d():
    from cnnkit.tasks.nms import kept_detections, padded_nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 20, 2, generator=g) * 12  # 64 images of D = 20 crowded boxes
    boxes = torch.cat([xy, xy + 10 + torch.rand(64, 20, 2, generator=g) * 4], dim=2)
    scores = torch.rand(64, 20, generator=g).mul(4).round().div(4)  # ties, and zeros (padding)
    labels = torch.randint(0, 3, (64, 20), generator=g)
    order, kept = padded_nms(boxes, scores, labels, 0.5)
    found = kept_detections(boxes, scores, labels, 0.5)
    suppressed = 0
    for i in range(64):
        real = scores[i] > 0
        b, s, lab = boxes[i][real], scores[i][real], labels[i][real]
        want = batched_nms(b, s, lab, 0.5)
        assert torch.equal(found[i]["boxes"], b[want])
        assert torch.equal(found[i]["scores"], s[want])
        assert torch.equal(found[i]["labels"], lab[want])
        assert torch.equal(boxes[i][order[i][kept[i]]], b[want])
        suppressed += len(s) - len(want)
    assert suppressed > 200  # the case is not trivial: NMS really dropped boxes


def test_padded_nms_in_numpy_and_in_torch_give_the_same_answer():
    from unittest import mock

    from cnnkit.tasks import nms

    g = torch.Generator().manual_seed(1)
    xy = torch.rand(64, 20, 2, generator=g) * 12  # crowded float32 boxes, as a decode gives
    boxes = torch.cat([xy, xy + 10 + torch.rand(64, 20, 2, generator=g) * 4], dim=2)
    scores = torch.rand(64, 20, generator=g).mul(4).round().div(4)  # ties and padding
    scores[::3, -1] = -0.0  # a negative zero is padding too, tied with 0.0
    labels = torch.randint(0, 3, (64, 20), generator=g)
    assert nms._on_host(boxes, scores, labels)
    host = nms.padded_nms(boxes, scores, labels, 0.5)
    with mock.patch.object(nms, "NUMPY_ON_CPU", False):  # the switch off
        assert not nms._on_host(boxes, scores, labels)
        ops = nms.padded_nms(boxes, scores, labels, 0.5)
    assert host[0].dtype == ops[0].dtype == torch.int64 and host[1].dtype == torch.bool
    assert torch.equal(host[0], ops[0]) and torch.equal(host[1], ops[1])
    assert (~host[1] & (scores.gather(1, host[0]) > 0)).sum() > 200  # boxes really dropped


def test_padded_nms_takes_bf16_and_tensors_that_require_grad():
    from cnnkit.tasks import nms

    boxes = torch.tensor([[[0.0, 0, 10, 10], [1.0, 1, 10, 10], [0.0, 0, 10, 10]]])
    scores, labels = torch.tensor([[0.9, 0.8, 0.7]]), torch.tensor([[0, 0, 1]])
    assert not nms._on_host(boxes.bfloat16(), scores, labels)  # NumPy has no bf16: torch ops
    for b, s in ((boxes.bfloat16(), scores.bfloat16()), (boxes.requires_grad_(), scores)):
        order, kept = nms.padded_nms(b, s, labels, 0.5)
        assert order[0][kept[0]].tolist() == [0, 2]


def test_padded_nms_of_only_padding_and_of_a_few_real_boxes_in_a_long_top_d():
    from unittest import mock

    from cnnkit.tasks import nms

    boxes = torch.tensor([[0.0, 0, 10, 10]]).repeat(3, 100, 1)  # all the same box
    scores = torch.zeros(3, 100)
    labels = torch.zeros(3, 100, dtype=torch.long)
    scores[1, [40, 7, 90]] = torch.tensor([0.5, 0.5, 0.9])  # image 1: three real, image 0, 2: none
    scores[2, 99] = 0.1
    for on_host in (True, False):
        with mock.patch.object(nms, "NUMPY_ON_CPU", on_host):
            order, kept = nms.padded_nms(boxes, scores, labels, 0.5)
        assert [order[i][kept[i]].tolist() for i in range(3)] == [[], [90], [99]]
        assert order[1, :3].tolist() == [90, 7, 40]  # by score, ties in input order


def test_padded_nms_bad_inputs_name_the_argument():
    from cnnkit.tasks.nms import padded_nms

    boxes = torch.zeros(2, 5, 4)
    with pytest.raises(TypeError, match="scores must be a torch.Tensor, got list"):
        padded_nms(boxes, [[0.5] * 5] * 2, torch.zeros(2, 5, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, D, 4\)"):
        padded_nms(torch.zeros(5, 4), torch.zeros(5), torch.zeros(5, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(2, 5\)"):
        padded_nms(boxes, torch.zeros(2, 4), torch.zeros(2, 5, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 5\)"):
        padded_nms(boxes, torch.zeros(2, 5), torch.zeros(5, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        padded_nms(boxes, torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.long), -0.1)
    order, kept = padded_nms(torch.zeros(0, 5, 4), torch.zeros(0, 5),
                             torch.zeros(0, 5, dtype=torch.long), 0.5)
    assert order.shape == kept.shape == (0, 5)


def test_padded_nms_of_one_real_box_per_image_and_of_integer_boxes():
    from unittest import mock

    from cnnkit.tasks import nms

    # one real box per image: nothing to compare it with (the NumPy path skips the IoU)
    boxes = torch.tensor([[[0.0, 0, 10, 10], [0.0, 0, 10, 10]]]).repeat(2, 1, 1)
    scores = torch.tensor([[0.0, 0.4], [0.7, 0.0]])
    labels = torch.zeros(2, 2, dtype=torch.long)
    order, kept = nms.padded_nms(boxes, scores, labels, 0.5)
    assert [order[i][kept[i]].tolist() for i in range(2)] == [[1], [0]]
    # integer pixel boxes: the same answer as their float copies, on both paths
    g = torch.Generator().manual_seed(2)
    xy = torch.randint(0, 12, (8, 10, 2), generator=g)
    ints = torch.cat([xy, xy + 8 + torch.randint(0, 4, (8, 10, 2), generator=g)], dim=2)
    scores = torch.rand(8, 10, generator=g)
    labels = torch.randint(0, 2, (8, 10), generator=g)
    want = nms.padded_nms(ints.float(), scores, labels, 0.4)
    assert (~want[1]).sum() > 5  # boxes really dropped
    for on_host in (True, False):
        with mock.patch.object(nms, "NUMPY_ON_CPU", on_host):
            got = nms.padded_nms(ints, scores, labels, 0.4)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
