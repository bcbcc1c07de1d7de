"""The localisation folder reader/writer (labels.csv with boxes) on tiny files written here."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.boxes import read_box_split, read_boxes, write_boxes
from cnnkit.errors import DataError

HEADER = "filename,label,x_min,y_min,x_max,y_max\n"


def _write_split(folder, rows, size=(12, 16), mode="L"):
    """Write a grey (or RGB) image per row (pixel value = row index * 10) and labels.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        h, w = size
        shape = (h, w) if mode == "L" else (h, w, 3)
        Image.fromarray(np.full(shape, i * 10, dtype=np.uint8), mode=mode).save(
            folder / row.split(",")[0])
    (folder / "labels.csv").write_text(HEADER + "".join(r + "\n" for r in rows))


def test_reads_train_and_val(tmp_path):
    _write_split(tmp_path / "train", ["a.png,dog,1,2,5,9", "b.png,cat,0,0,16,12"])
    _write_split(tmp_path / "val", ["c.png,dog,3,3,4,4"])
    splits = read_boxes(tmp_path)
    assert splits.task == "localize" and splits.class_names == ["cat", "dog"]
    assert splits.input_shape == (1, 12, 16)
    assert splits.train.labels.tolist() == [1, 0] and splits.train.names == ["a.png", "b.png"]
    assert splits.train.boxes.tolist() == [[1, 2, 5, 9], [0, 0, 16, 12]]
    assert splits.val.boxes.tolist() == [[3, 3, 4, 4]] and splits.test is None
    assert int(splits.train.images[1].max()) == 10


def test_without_val_a_seeded_split_is_held_out(tmp_path):
    _write_split(tmp_path / "train", [f"{i}.png,x,0,0,2,2" for i in range(10)])
    a = read_boxes(tmp_path, val_split=0.3, seed=1)
    b = read_boxes(tmp_path, val_split=0.3, seed=1)
    assert len(a.val) == 3 and a.val.names == b.val.names
    assert set(a.val.names).isdisjoint(a.train.names)


def test_other_sizes_are_stretched_with_their_boxes(tmp_path):
    _write_split(tmp_path / "train", ["a.png,x,0,0,4,4"], size=(8, 8))
    _write_split(tmp_path / "val", ["b.png,x,2,4,8,16"], size=(16, 16))
    splits = read_boxes(tmp_path)
    assert splits.val.images.shape == (1, 1, 8, 8)
    assert splits.val.boxes.tolist() == [[1, 2, 4, 8]]


def test_round_trip_through_the_writer(tmp_path):
    images = torch.randint(0, 256, (3, 3, 10, 12), dtype=torch.uint8)
    data = AnnotatedData("localize", images, ["p", "q"], labels=torch.tensor([0, 1, 1]),
                         boxes=torch.tensor([[0, 0, 12, 10], [1.5, 2, 3, 4], [5, 5, 6, 6]]),
                         names=["s0", "s1", "s2"])
    train, val = data.split(1 / 3, seed=0)
    write_boxes(AnnotatedSplits(train, val), tmp_path)
    back = read_boxes(tmp_path)
    assert back.train.names == [n + ".png" for n in train.names]
    assert torch.equal(back.train.images, train.images)
    assert torch.equal(back.train.boxes, train.boxes) and torch.equal(back.val.labels, val.labels)
    assert (tmp_path / "classes.txt").read_text() == "p\nq\n"
    with pytest.raises(ValueError, match="localisation"):
        write_boxes(AnnotatedData("segment", images, ["bg"],
                                  masks=torch.zeros(3, 10, 12, dtype=torch.uint8)), tmp_path)


@pytest.mark.parametrize("row, match", [
    ("missing.png,x,0,0,2,2", r"line 3: image file 'missing.png' not found"),
    ("a.png,x,0,0,17,2", r"line 3: box \[0.0, 0.0, 17.0, 2.0\] of 'a.png' is not inside the 16x12"),
    ("a.png,x,5,0,5,2", "line 3: .*x_max > x_min"),
    ("a.png,x,0,-1,3,2", "line 3: .*not inside"),
    ("a.png,x,0,0,two,2", "line 3: x_min,y_min,x_max,y_max must be numbers"),
    ("a.png,x,0,0,2", "line 3: expected 6 values"),
    ("../a.png,x,0,0,2,2", "points outside"),
])
def test_bad_rows_name_the_file_and_line(tmp_path, row, match):
    _write_split(tmp_path / "train", ["a.png,x,0,0,2,2"])
    (tmp_path / "train" / "labels.csv").write_text(HEADER + "a.png,x,0,0,2,2\n" + row + "\n")
    with pytest.raises(DataError, match=match):
        read_box_split(tmp_path / "train")


def test_unknown_label_in_val_and_bad_header(tmp_path):
    _write_split(tmp_path / "train", ["a.png,dog,0,0,2,2"])
    _write_split(tmp_path / "val", ["b.png,cow,0,0,2,2"])
    with pytest.raises(DataError, match=r"val/labels.csv, line 2: unknown label 'cow'"):
        read_boxes(tmp_path)
    (tmp_path / "val" / "labels.csv").write_text("file,label,x,y,w,h\nb.png,dog,0,0,2,2\n")
    with pytest.raises(DataError, match="header must be"):
        read_boxes(tmp_path)
    (tmp_path / "val" / "labels.csv").unlink()
    with pytest.raises(DataError, match="labels.csv not found"):
        read_boxes(tmp_path)


def test_grey_and_colour_images_mix_as_rgb(tmp_path):
    _write_split(tmp_path / "train", ["a.png,x,0,0,2,2"])
    Image.fromarray(np.zeros((12, 16, 3), dtype=np.uint8), mode="RGB").save(
        tmp_path / "train" / "b.png")
    (tmp_path / "train" / "labels.csv").write_text(HEADER + "a.png,x,0,0,2,2\nb.png,x,0,0,2,2\n")
    data = read_box_split(tmp_path / "train")
    assert data.input_shape == (3, 12, 16)


def test_classes_txt_fixes_the_class_order_and_unused_classes(tmp_path):
    _write_split(tmp_path / "train", ["a.png,dog,0,0,2,2"])
    _write_split(tmp_path / "val", ["b.png,cat,0,0,2,2"])
    (tmp_path / "classes.txt").write_text("dog\ncat\nfox\n")
    splits = read_boxes(tmp_path)
    assert splits.class_names == ["dog", "cat", "fox"]
    assert splits.train.labels.tolist() == [0] and splits.val.labels.tolist() == [1]
    (tmp_path / "classes.txt").write_text("dog\ndog\n")
    with pytest.raises(DataError, match="distinct class names"):
        read_boxes(tmp_path)
