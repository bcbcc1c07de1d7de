"""open_annotated / infer_task: every layout on tiny files written here, and the input errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.boxes import write_boxes
from cnnkit.data.coco import write_coco
from cnnkit.data.masks import write_masks
from cnnkit.data.open_annotated import infer_task, open_annotated
from cnnkit.data.scenes import open_scenes
from cnnkit.data.voc import write_voc
from cnnkit.errors import DataError

H, W = 8, 10


def _images(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, H, W), generator=generator, dtype=torch.uint8)


def _localize(n: int, split: str, seed: int = 0) -> AnnotatedData:
    boxes = torch.tensor([[i % 3, 1, 5 + i % 4, 7] for i in range(n)], dtype=torch.float32)
    return AnnotatedData("localize", _images(n, seed), ["cat", "dog"],
                         labels=torch.arange(n) % 2, boxes=boxes,
                         names=[f"{split}{i}" for i in range(n)])


def _segment(n: int, split: str, seed: int = 0) -> AnnotatedData:
    masks = torch.zeros(n, H, W, dtype=torch.uint8)
    for i in range(n):
        masks[i, 1:4, i % 5:i % 5 + 3] = 1 + i % 2
    masks[0, 0, 0] = 255  # an ignore pixel
    return AnnotatedData("segment", _images(n, seed), ["background", "a", "b"], masks=masks,
                         names=[f"{split}{i}" for i in range(n)])


def _detect(n: int, split: str, seed: int = 0, *, objects: int = 2) -> AnnotatedData:
    labels = torch.full((n, objects), -1, dtype=torch.int64)
    boxes = torch.zeros(n, objects, 4, dtype=torch.float32)
    for i in range(n):
        for j in range(1 + (i % objects)):  # image i has 1 + i % objects objects
            labels[i, j] = (i + j) % 3
            boxes[i, j] = torch.tensor([j, 1, j + 3 + i % 2, 6], dtype=torch.float32)
    return AnnotatedData("detect", _images(n, seed), ["x", "y", "z"], labels=labels, boxes=boxes,
                         names=[f"{split}{i}" for i in range(n)])


def _splits(make, **kwargs) -> AnnotatedSplits:
    return AnnotatedSplits(make(6, "train", 1, **kwargs), make(3, "val", 2, **kwargs),
                           make(2, "test", 3, **kwargs))


def _assert_same(read: AnnotatedSplits, written: AnnotatedSplits) -> None:
    assert read.task == written.task and read.class_names == written.class_names
    for split, part in written.parts().items():
        got = getattr(read, split)
        assert torch.equal(got.images, part.images), split
        for key, value in part.targets().items():
            assert torch.equal(got.targets()[key], value), (split, key)


# ----------------------------------------------------------------------------- each layout


def test_localisation_folder(tmp_path):
    written = _splits(_localize)
    write_boxes(written, tmp_path / "loc")
    assert infer_task(tmp_path / "loc") == "localize"
    _assert_same(open_annotated(tmp_path / "loc"), written)
    assert open_annotated(str(tmp_path / "loc"), task="localize").task == "localize"


def test_segmentation_folder(tmp_path):
    written = _splits(_segment)
    write_masks(written, tmp_path / "seg")
    assert infer_task(tmp_path / "seg") == "segment"
    _assert_same(open_annotated(tmp_path / "seg", task="segment"), written)


def test_coco_folder_and_single_json(tmp_path):
    written = _splits(_detect)
    write_coco(written, tmp_path / "det")
    assert infer_task(tmp_path / "det") == "detect"
    _assert_same(open_annotated(tmp_path / "det"), written)
    single = tmp_path / "det" / "train" / "annotations.json"
    assert infer_task(single) == "detect"
    splits = open_annotated(single, val_split=0.5, seed=1)
    assert (len(splits.train), len(splits.val), splits.test) == (3, 3, None)
    together = torch.cat([splits.train.images, splits.val.images])
    assert sorted(together.flatten(1).sum(1).tolist()) == \
        sorted(written.train.images.flatten(1).sum(1).tolist())  # (N, 1, H, W) -> (N, H*W)


def test_coco_json_with_images_elsewhere_needs_image_root(tmp_path):
    write_coco(_splits(_detect), tmp_path / "det")
    moved = tmp_path / "elsewhere.json"
    moved.write_text((tmp_path / "det" / "train" / "annotations.json").read_text())
    with pytest.raises(DataError, match="image_root"):
        open_annotated(moved)
    splits = open_annotated(moved, image_root=tmp_path / "det" / "train")
    assert len(splits.train) + len(splits.val) == 6


def test_voc_folder(tmp_path):
    written = _splits(_detect)
    write_voc(written, tmp_path / "voc")
    assert infer_task(tmp_path / "voc") == "detect"
    _assert_same(open_annotated(tmp_path / "voc", task="detect"), written)


def test_scene_names(tmp_path):
    sizes = {"train": 6, "val": 0, "test": 2}
    data_dir = tmp_path / "no-mnist"  # MNIST absent: the built-in 8x8 digits
    assert [infer_task(n) for n in ("mnist-localize", "mnist-segment", "mnist-detect")] == \
        ["localize", "segment", "detect"]
    splits = open_annotated("mnist-segment", sizes=sizes, seed=4, val_split=0.5,
                            data_dir=data_dir)
    made = open_scenes("mnist-segment", sizes=sizes, seed=4, data_dir=data_dir)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 3, 2)
    assert torch.equal(splits.test.masks, made.test.masks)
    assert torch.equal(torch.cat([splits.train.images, splits.val.images]).sort(0).values,
                       made.train.images.sort(0).values)


def test_scenes_are_brought_to_size_and_channels(tmp_path):
    sizes = {"train": 4, "val": 2, "test": 0}
    data_dir = tmp_path / "no-mnist"
    made = open_scenes("mnist-localize", sizes=sizes, data_dir=data_dir)
    resized = open_annotated("mnist-localize", sizes=sizes, size=32, channels=3,
                             data_dir=data_dir)
    assert resized.input_shape == (3, 32, 32)
    assert torch.allclose(resized.train.boxes, made.train.boxes / 2)  # 64 -> 32: half
    seg = open_annotated("mnist-segment", sizes=sizes, size=(48, 24), data_dir=data_dir)
    ref = open_scenes("mnist-segment", sizes=sizes, data_dir=data_dir).train.masks
    assert seg.train.masks.shape == (4, 48, 24)
    assert torch.equal(seg.train.masks, ref[:, ::2, ::4])  # nearest: every 2nd row, 4th col


# ----------------------------------------------------------------------------- infer_task


def test_classification_sources_are_classify(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "pets" / name / "a.png")
    (tmp_path / "table.csv").write_text("path,label\npets/cat/a.png,cat\n")
    for spec in ("digits", "mnist", "cifar10", tmp_path / "pets", tmp_path / "table.csv",
                 "x.npy,y.npy", tmp_path / "missing"):
        assert infer_task(spec) == "classify", spec


def test_infer_task_decodes_nothing(tmp_path):
    # only names and CSV headers are looked at: files that are not images do not matter
    (tmp_path / "loc" / "train").mkdir(parents=True)
    (tmp_path / "loc" / "train" / "labels.csv").write_text(
        "filename,label,x_min,y_min,x_max,y_max\na.png,cat,0,0,1,1\n")
    (tmp_path / "loc" / "train" / "a.png").write_bytes(b"not a png")
    assert infer_task(tmp_path / "loc") == "localize"
    with pytest.raises(DataError, match="a.png"):
        open_annotated(tmp_path / "loc")


def test_a_labels_csv_without_box_columns_is_not_localisation(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "labels.csv").write_text("filename,label\na.png,cat\n")
    assert infer_task(tmp_path) == "classify"


def test_infer_task_names_the_scene_meant_by_a_typo():
    with pytest.raises(DataError, match="did you mean the scenes 'mnist-detect'"):
        infer_task("mnist-detcet")
    with pytest.raises(TypeError, match="data must be a path"):
        infer_task(3)


# ----------------------------------------------------------------------------- detect -> localize


def test_localize_on_coco_with_one_box_per_image(tmp_path):
    written = _splits(_detect, objects=1)
    write_coco(written, tmp_path / "det")
    splits = open_annotated(tmp_path / "det", task="localize")
    assert splits.task == "localize" and splits.class_names == ["x", "y", "z"]
    for split, part in written.parts().items():
        got = getattr(splits, split)
        assert torch.equal(got.labels, part.labels[:, 0])
        assert torch.equal(got.boxes, part.boxes[:, 0])


def test_localize_on_coco_with_several_boxes_names_the_image(tmp_path):
    write_coco(_splits(_detect), tmp_path / "det")  # image train1 has 2 objects
    with pytest.raises(DataError, match=r"exactly one object per image.*'train1.png'.* has 2"):
        open_annotated(tmp_path / "det", task="localize")
    document = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2]}],
                "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "empty").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "empty" / name)
    (tmp_path / "empty" / "annotations.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="'a.png' .* has 0"):
        open_annotated(tmp_path / "empty" / "annotations.json", task="localize", val_split=0.5)


# ----------------------------------------------------------------------------- errors


def test_task_that_is_not_the_datas(tmp_path):
    write_masks(_splits(_segment), tmp_path / "seg")
    with pytest.raises(DataError, match=r"is segment data .* task='detect' was asked; pass "
                                        r"task='segment' \(--task segment\) or give detect data"):
        open_annotated(tmp_path / "seg", task="detect")
    with pytest.raises(DataError, match="is localize data .* task='segment'"):
        open_annotated("mnist-localize", task="segment")
    with pytest.raises(ValueError, match="task must be None or one of"):
        open_annotated(tmp_path / "seg", task="segmentation")


def test_classify_task_points_to_open_data(tmp_path):
    with pytest.raises(DataError, match="task 'classify' is read by cnnkit.data.open_data"):
        open_annotated("digits", task="classify")


@pytest.mark.parametrize("spec, first", [
    ("missing-folder", "unknown data 'missing-folder': no such file or folder"),
    ("digits", "'digits' is a classification dataset"),
])
def test_bad_specs_list_the_accepted_layouts(spec, first):
    with pytest.raises(DataError) as info:
        open_annotated(spec)
    message = str(info.value)
    assert message.startswith(first)
    for words in ("Pascal VOC", "COCO", "segmentation folder", "localisation folder",
                  "mnist-detect"):
        assert words in message


def test_folder_and_file_of_no_known_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has none of the annotated layouts; localisation, "
                                        "segmentation or detection data is: .*Pascal VOC"):
        open_annotated(tmp_path / "empty")
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(DataError, match="is not a COCO .json file; segment data is: "
                                        "a segmentation folder"):
        open_annotated(tmp_path / "a.txt", task="segment")


def test_options_that_do_not_apply(tmp_path):
    write_boxes(_splits(_localize), tmp_path / "loc")
    with pytest.raises(ValueError, match="sizes applies to the generated scenes"):
        open_annotated(tmp_path / "loc", sizes={"train": 3})
    with pytest.raises(ValueError, match="image_root applies to COCO data only"):
        open_annotated(tmp_path / "loc", image_root=tmp_path)
    with pytest.raises(ValueError, match="channels must be"):
        open_annotated(tmp_path / "loc", channels=2)
    with pytest.raises(ValueError, match="val_split must be in"):
        open_annotated(tmp_path / "loc", val_split=1.5)
