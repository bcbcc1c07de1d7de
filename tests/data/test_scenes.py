"""Generated digit scenes: determinism, exact boxes and masks, disjoint digit sources, fallback."""
import logging

import numpy as np
import pytest
import torch

from cnnkit.data.named import load_named
from cnnkit.data.scenes import MASK_THRESHOLD, _digits, make_scenes, open_scenes
from cnnkit.errors import DataError


def _reference_box(on: np.ndarray) -> list[float]:
    """Tight xyxy box (max exclusive) of the True pixels of a (H, W) array, by plain loops."""
    ys, xs = np.nonzero(on)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("name", ["mnist-localize", "mnist-segment", "mnist-detect"])
def test_same_seed_same_scenes(name, mnist_dir):
    a = make_scenes(name, "train", 40, seed=5, data_dir=mnist_dir.parent)
    b = make_scenes(name, "train", 40, seed=5, data_dir=mnist_dir.parent)
    c = make_scenes(name, "train", 40, seed=6, data_dir=mnist_dir.parent)
    assert torch.equal(a.images, b.images)
    for key, value in a.targets().items():
        assert torch.equal(value, b.targets()[key])
    assert not torch.equal(a.images, c.images)
    assert a.names[0] == f"{name}-train-00000"


def test_localize_box_is_the_tight_box_of_the_digit(mnist_dir):
    data = make_scenes("mnist-localize", "test", 50, seed=1, data_dir=mnist_dir.parent)
    assert data.images.shape == (50, 1, 64, 64) and data.class_names == [str(k) for k in range(10)]
    for image, box in zip(data.images[:, 0].numpy(), data.boxes.tolist()):
        assert box == _reference_box(image > 0)
    sides = data.boxes[:, 2:] - data.boxes[:, :2]
    assert float(sides.max()) <= 44 and float(sides.max(1).values.min()) >= 8
    # labels are the digits: the scenes' label histogram follows MNIST's (all 10 present)
    assert set(data.labels.tolist()) == set(range(10))


def test_segment_masks_match_the_digit_pixels(mnist_dir):
    data = make_scenes("mnist-segment", "val", 60, seed=2, data_dir=mnist_dir.parent)
    assert data.class_names == ["background"] + [str(k) for k in range(10)]
    assert data.masks.shape == (60, 96, 96) and int(data.masks.max()) <= 10
    image = data.images[:, 0]
    assert torch.equal(data.masks != 0, image >= MASK_THRESHOLD)
    classes_per_scene = [len(set(m.unique().tolist()) - {0}) for m in data.masks]
    assert min(classes_per_scene) >= 1 and max(classes_per_scene) <= 4
    assert max(classes_per_scene) >= 3


def test_detect_boxes_cover_every_digit_pixel(mnist_dir):
    data = make_scenes("mnist-detect", "train", 60, seed=3, data_dir=mnist_dir.parent)
    present = data.labels >= 0
    counts = present.sum(1)
    assert data.labels.shape == (60, 5) and int(counts.min()) >= 1 and int(counts.max()) <= 5
    assert torch.equal(present.sum(1) > 0, torch.ones(60, dtype=torch.bool))
    assert bool((data.boxes[~present] == 0).all())
    for i in range(60):
        covered = np.zeros((96, 96), dtype=bool)
        for x0, y0, x1, y1 in data.boxes[i][present[i]].int().tolist():
            covered[y0:y1, x0:x1] = True
            # a tight box touches a lit pixel on each of its four sides
            patch = data.images[i, 0, y0:y1, x0:x1].numpy() > 0
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()
        assert not (data.images[i, 0].numpy() > 0)[~covered].any()


def test_split_digit_sources_are_disjoint(mnist_dir):
    train, _, used = _digits("train", "mnist", str(mnist_dir.parent))
    val, _, _ = _digits("val", "mnist", str(mnist_dir.parent))
    test, _, _ = _digits("test", "mnist", str(mnist_dir.parent))
    assert used == "mnist" and (len(train), len(val), len(test)) == (50000, 10000, 10000)
    real = load_named("mnist", data_dir=mnist_dir.parent, download=False, progress=False)
    assert torch.equal(torch.cat([train, val]), real.train.images[:, 0])
    assert torch.equal(test, real.test.images[:, 0])


def test_open_scenes_sizes_and_shared_shapes(mnist_dir):
    splits = open_scenes("mnist-detect", seed=0, sizes={"train": 30, "val": 10, "test": 0},
                         data_dir=mnist_dir.parent)
    assert splits.task == "detect" and splits.input_shape == (1, 96, 96)
    assert (len(splits.train), len(splits.val), splits.test) == (30, 10, None)
    with pytest.raises(ValueError, match="unknown split"):
        open_scenes("mnist-detect", sizes={"tarin": 3})


def test_builtin_fallback(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    forced = make_scenes("mnist-localize", "train", 20, seed=0, source="builtin")
    with caplog.at_level(logging.WARNING, logger="cnnkit.data.scenes"):
        auto = make_scenes("mnist-localize", "train", 20, seed=0, data_dir=tmp_path / "empty")
    assert "8x8 digits" in caplog.text
    assert torch.equal(forced.images, auto.images) and torch.equal(forced.boxes, auto.boxes)
    for image, box in zip(forced.images[:, 0].numpy(), forced.boxes.tolist()):
        assert box == _reference_box(image > 0)
    seg = make_scenes("mnist-segment", "test", 10, source="builtin")
    assert torch.equal(seg.masks != 0, seg.images[:, 0] >= MASK_THRESHOLD)
    with pytest.raises(DataError, match="mnist"):
        make_scenes("mnist-localize", "train", 2, source="mnist", data_dir=tmp_path / "empty")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown scene set 'mnist-classify'"):
        make_scenes("mnist-classify", "train", 2)
    with pytest.raises(ValueError, match="split must be"):
        make_scenes("mnist-localize", "dev", 2)
    with pytest.raises(ValueError, match="n must be"):
        make_scenes("mnist-localize", "train", 0)
    with pytest.raises(ValueError, match="source must be"):
        make_scenes("mnist-localize", "train", 2, source="emnist")


def test_builtin_digit_splits_partition_the_8x8_digits():
    sizes = [len(_digits(split, "builtin", None)[0]) for split in ("train", "val", "test")]
    assert sizes == [1079, 359, 359]  # positions i % 5 in {0, 1, 2} / {3} / {4} of 1797
    images, labels, used = _digits("test", "builtin", None)
    assert used == "builtin" and images.shape[1:] == (8, 8)
    assert set(labels.tolist()) == set(range(10))


def test_write_scenes_round_trips_through_the_box_reader(tmp_path):
    from cnnkit.data.boxes import read_boxes
    from cnnkit.data.scenes import write_scenes

    sizes = {"train": 12, "val": 4, "test": 4}
    write_scenes("mnist-localize", tmp_path, seed=2, sizes=sizes, source="builtin")
    back = read_boxes(tmp_path)
    made = open_scenes("mnist-localize", seed=2, sizes=sizes, source="builtin")
    for split in ("train", "val", "test"):
        part, ref = getattr(back, split), getattr(made, split)
        assert torch.equal(part.images, ref.images) and torch.equal(part.boxes, ref.boxes)
        assert torch.equal(part.labels, ref.labels) and part.class_names == ref.class_names
