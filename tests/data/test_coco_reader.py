"""Tests of the COCO instances JSON reader and writer (cnnkit.data.coco)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.coco import read_coco, read_coco_split, write_coco
from cnnkit.errors import DataError


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 12, 16), generator=g, dtype=torch.uint8)
    labels = torch.tensor([[0, 1], [1, -1]] * (n // 2), dtype=torch.int64)
    boxes = torch.zeros(n, 2, 4)
    boxes[:, 0] = torch.tensor([1.0, 2.0, 5.0, 9.0])
    boxes[:, 1] = torch.tensor([0.5, 0.0, 16.0, 12.0])
    ignore = torch.zeros(n, 2, dtype=torch.bool)
    ignore[0, 1] = True
    return AnnotatedData("detect", images, ["cat", "dog"], labels=labels, boxes=boxes,
                         ignore=ignore, names=[f"d{seed}_{i}.png" for i in range(n)])


def _split(folder, annotations, images=None, categories=None):
    """A split folder with two 10x8 grey images and the given annotations."""
    folder.mkdir(parents=True, exist_ok=True)
    images = images or [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}]
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((8, 10), 9, np.uint8)).save(folder / name)
    document = {"images": images, "annotations": annotations,
                "categories": categories or [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]}
    (folder / "annotations.json").write_text(json.dumps(document))
    return folder / "annotations.json"


def _ann(image_id=1, category_id=7, bbox=(1, 1, 4, 3), iscrowd=0):
    return {"image_id": image_id, "category_id": category_id, "bbox": list(bbox),
            "iscrowd": iscrowd}


def test_round_trip(tmp_path):
    splits = AnnotatedSplits(_data(4, 0), _data(2, 1), _data(2, 2))
    write_coco(splits, tmp_path)
    back = read_coco(tmp_path)
    assert back.task == "detect" and back.class_names == ["cat", "dog"]
    for name, part in splits.parts().items():
        got = back.parts()[name]
        assert torch.equal(got.images, part.images)
        assert torch.equal(got.labels, part.labels)
        present = part.labels != -1
        assert torch.equal(got.boxes[present], part.boxes[present])
        assert torch.equal(got.ignore, part.ignore)


def test_category_order_crowd_and_empty_images(tmp_path):
    path = _split(tmp_path, [_ann(category_id=3, bbox=(0, 0, 10, 8)),
                             _ann(category_id=7, bbox=(2, 1, 3, 4), iscrowd=1)])
    data = read_coco_split(path)
    assert data.class_names == ["cat", "dog"]  # category order, not id order
    assert data.labels.tolist() == [[1, 0], [-1, -1]]  # image b has no objects
    assert data.boxes[0].tolist() == [[0, 0, 10, 8], [2, 1, 5, 5]]
    assert data.ignore.tolist() == [[False, True], [False, False]]


def test_image_root_and_resize_scales_boxes(tmp_path):
    path = _split(tmp_path / "imgs", [_ann(bbox=(1, 2, 4, 4))])
    moved = tmp_path / "elsewhere.json"
    moved.write_text(path.read_text())
    data = read_coco_split(moved, image_root=tmp_path / "imgs", size=(16, 5))
    assert data.images.shape == (2, 1, 16, 5)
    assert data.boxes[0, 0].tolist() == [0.5, 4.0, 2.5, 12.0]


def test_without_val_is_a_seeded_split(tmp_path):
    write_coco(_data(10, 3), tmp_path)
    a, b = read_coco(tmp_path, val_split=0.2, seed=1), read_coco(tmp_path, val_split=0.2, seed=1)
    assert len(a.train) == 8 and len(a.val) == 2 and a.val.names == b.val.names


@pytest.mark.parametrize("bbox", [(8, 1, 4, 3), (1, 1, 0, 3), (-1, 0, 2, 2), (0, 0, 3, -1)])
def test_box_outside_or_zero_size(tmp_path, bbox):
    path = _split(tmp_path, [_ann(bbox=bbox)])
    with pytest.raises(DataError, match=r"annotations\[0\]: bbox .* not inside the 10x8 image"):
        read_coco_split(path)


def test_unknown_category(tmp_path):
    path = _split(tmp_path, [_ann(category_id=5)])
    with pytest.raises(DataError, match=r"annotations\[0\]: unknown category_id 5"):
        read_coco_split(path)


def test_image_listed_twice(tmp_path):
    same_id = [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}]
    with pytest.raises(DataError, match=r"images\[1\]: image id 1 is listed twice"):
        read_coco_split(_split(tmp_path / "x", [], images=same_id))
    same_file = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "a.png"}]
    with pytest.raises(DataError, match=r"images\[1\]: file 'a.png' is listed twice"):
        read_coco_split(_split(tmp_path / "y", [], images=same_file))


def test_missing_file_and_outside_file(tmp_path):
    missing = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "zz.png"}]
    with pytest.raises(DataError, match=r"image file 'zz.png' \(id 2\) not found"):
        read_coco_split(_split(tmp_path / "x", [], images=missing))
    outside = [{"id": 1, "file_name": "../x/a.png"}]
    with pytest.raises(DataError, match="points outside"):
        read_coco_split(_split(tmp_path / "y", [], images=outside))


def test_malformed_json_and_keys(tmp_path):
    path = _split(tmp_path, [])
    path.write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        read_coco_split(path)
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                                "categories": [{"id": 1, "name": "cat"}]}))
    with pytest.raises(DataError, match="key 'annotations' must be a list"):
        read_coco_split(path)
    _split(tmp_path, [{"image_id": 1, "category_id": 7}])
    with pytest.raises(DataError, match=r"annotations\[0\]: key 'bbox' must be a list"):
        read_coco_split(path)
    _split(tmp_path, [_ann(image_id=9)])
    with pytest.raises(DataError, match="image_id 9 is not in"):
        read_coco_split(path)
    with pytest.raises(DataError, match="annotations.json not found"):
        read_coco(tmp_path / "nothing")


def test_splits_must_share_categories(tmp_path):
    _split(tmp_path / "train", [])
    _split(tmp_path / "val", [], categories=[{"id": 1, "name": "cat"}])
    with pytest.raises(DataError, match="differ from the training split's"):
        read_coco(tmp_path)


def test_writer_refuses_other_tasks(tmp_path):
    data = AnnotatedData("segment", torch.zeros(1, 1, 4, 4, dtype=torch.uint8), ["bg"],
                         masks=torch.zeros(1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="detection"):
        write_coco(data, tmp_path)


def test_written_json_loads_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    write_coco(_data(2, 5), tmp_path)
    coco = COCO(str(tmp_path / "train" / "annotations.json"))
    assert sorted(coco.getCatIds()) == [1, 2] and len(coco.getAnnIds()) == 3
    assert coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]["bbox"] == [1.0, 2.0, 4.0, 7.0]
