"""Tests of the Pascal VOC reader and writer (cnnkit.data.voc)."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.voc import read_voc, write_voc
from cnnkit.errors import DataError

OBJECT = ("<object><name>{name}</name><difficult>{hard}</difficult><bndbox><xmin>{b[0]}</xmin>"
          "<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 12, 16), generator=g, dtype=torch.uint8)
    labels = torch.tensor([[0, 1], [1, -1]] * (n // 2), dtype=torch.int64)
    boxes = torch.zeros(n, 2, 4)
    boxes[:, 0] = torch.tensor([0.0, 2.0, 5.0, 9.0])
    boxes[:, 1] = torch.tensor([3.0, 0.0, 16.0, 12.0])
    ignore = torch.zeros(n, 2, dtype=torch.bool)
    ignore[0, 1] = True
    return AnnotatedData("detect", images, ["cat", "dog"], labels=labels, boxes=boxes,
                         ignore=ignore, names=[f"v{seed}_{i}.png" for i in range(n)])


def _voc(root, objects, header=""):
    """A VOC folder with one 10x8 JPEG 'a' listed in train.txt and val.txt."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 10, 3), 50, np.uint8)).save(root / "JPEGImages/a.jpg")
    body = "".join(OBJECT.format(name=n, hard=h, b=b) for n, h, b in objects)
    (root / "Annotations/a.xml").write_text(
        f"{header}<annotation><filename>a.jpg</filename>{body}</annotation>")
    for split in ("train", "val"):
        (root / "ImageSets/Main" / f"{split}.txt").write_text("a\n")
    return root


def test_round_trip(tmp_path):
    splits = AnnotatedSplits(_data(4, 0), _data(2, 1), _data(2, 2))
    write_voc(splits, tmp_path)
    back = read_voc(tmp_path)
    assert back.task == "detect" and back.class_names == ["cat", "dog"]
    for name, part in splits.parts().items():
        got = back.parts()[name]
        assert torch.equal(got.images, part.images)
        assert torch.equal(got.labels, part.labels)
        present = part.labels != -1
        assert torch.equal(got.boxes[present], part.boxes[present])
        assert torch.equal(got.ignore, part.ignore)


def test_one_based_boxes_difficult_and_sorted_classes(tmp_path):
    _voc(tmp_path, [("dog", 0, (1, 1, 10, 8)), ("cat", 1, (3, 2, 5, 6))])
    data = read_voc(tmp_path).train
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [[1, 0]]
    assert data.boxes[0].tolist() == [[0, 0, 10, 8], [2, 1, 5, 6]]
    assert data.ignore.tolist() == [[False, True]]


def test_without_val_is_a_seeded_split(tmp_path):
    write_voc(_data(10, 3), tmp_path)
    a, b = read_voc(tmp_path, val_split=0.2, seed=4), read_voc(tmp_path, val_split=0.2, seed=4)
    assert len(a.train) == 8 and len(a.val) == 2 and a.val.names == b.val.names


@pytest.mark.parametrize("header", ['<!DOCTYPE a [<!ENTITY x "y">]>', "<!ENTITY x 'y'>",
                                    "<!doctype annotation>"])
def test_doctype_and_entity_are_refused(tmp_path, header):
    _voc(tmp_path, [], header=header)
    with pytest.raises(DataError, match="DOCTYPE.*refused"):
        read_voc(tmp_path)


@pytest.mark.parametrize("box", [(5, 1, 11, 8), (0, 1, 4, 4), (5, 3, 4, 6)])
def test_box_outside_or_empty(tmp_path, box):
    _voc(tmp_path, [("cat", 0, box)])
    with pytest.raises(DataError, match=r"a\.xml, object 0: bndbox .* not inside the 10x8"):
        read_voc(tmp_path)


def test_unknown_class_with_classes_txt(tmp_path):
    _voc(tmp_path, [("fox", 0, (1, 1, 4, 4))])
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="unknown class 'fox'"):
        read_voc(tmp_path)


def test_bad_xml_missing_files_and_values(tmp_path):
    _voc(tmp_path, [("cat", 0, ("one", 1, 4, 4))])
    with pytest.raises(DataError, match="needs numeric xmin"):
        read_voc(tmp_path)
    (tmp_path / "Annotations/a.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match="not well-formed XML"):
        read_voc(tmp_path)
    (tmp_path / "Annotations/a.xml").unlink()
    with pytest.raises(DataError, match=r"a\.xml not found"):
        read_voc(tmp_path)
    _voc(tmp_path, [])
    (tmp_path / "JPEGImages/a.jpg").unlink()
    with pytest.raises(DataError, match=r"a\.jpg not found"):
        read_voc(tmp_path)
    with pytest.raises(DataError, match="Annotations not found"):
        read_voc(tmp_path / "nothing")
