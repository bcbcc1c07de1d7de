"""write_scenes: every scene set written in its task's format reads back to the same scenes."""
from __future__ import annotations

import json

import pytest
import torch

from cnnkit.data.coco import read_coco
from cnnkit.data.masks import read_masks
from cnnkit.data.open_annotated import infer_task, open_annotated
from cnnkit.data.scenes import open_scenes, write_scenes

SIZES = {"train": 8, "val": 4, "test": 4}


def test_segment_round_trip(tmp_path):
    folder = write_scenes("mnist-segment", tmp_path / "seg", seed=3, sizes=SIZES,
                          source="builtin")
    assert folder == tmp_path / "seg"
    assert (folder / "classes.txt").read_text().split() == ["background", *map(str, range(10))]
    assert len(list((folder / "val" / "masks").glob("*.png"))) == 4
    back = read_masks(folder)
    made = open_scenes("mnist-segment", seed=3, sizes=SIZES, source="builtin")
    assert back.class_names == made.class_names
    for split, part in made.parts().items():
        got = getattr(back, split)
        assert torch.equal(got.images, part.images), split
        assert torch.equal(got.masks, part.masks), split
        assert got.names == [f"{name}.png" for name in part.names]


def test_detect_round_trip(tmp_path):
    folder = write_scenes("mnist-detect", tmp_path / "det", seed=5, sizes=SIZES,
                          source="builtin")
    document = json.loads((folder / "train" / "annotations.json").read_text())
    assert [c["name"] for c in document["categories"]] == [str(k) for k in range(10)]
    assert [c["id"] for c in document["categories"]] == list(range(1, 11))
    back = read_coco(folder)
    made = open_scenes("mnist-detect", seed=5, sizes=SIZES, source="builtin")
    assert back.class_names == made.class_names
    for split, part in made.parts().items():
        got = getattr(back, split)
        assert torch.equal(got.images, part.images), split
        assert not bool(got.ignore.any())
        # the same objects per image, in slot order (the padding may be narrower)
        for i in range(len(part)):
            present, got_present = part.labels[i] >= 0, got.labels[i] >= 0
            assert torch.equal(got.labels[i][got_present], part.labels[i][present])
            assert torch.equal(got.boxes[i][got_present], part.boxes[i][present])
    assert len(document["annotations"]) == int((made.train.labels >= 0).sum())


def test_localize_round_trip_through_open_annotated(tmp_path):
    folder = write_scenes("mnist-localize", tmp_path / "loc", seed=1, sizes=SIZES,
                          source="builtin")
    assert infer_task(folder) == "localize"
    back = open_annotated(folder)
    made = open_scenes("mnist-localize", seed=1, sizes=SIZES, source="builtin")
    for split, part in made.parts().items():
        got = getattr(back, split)
        assert torch.equal(got.images, part.images) and torch.equal(got.boxes, part.boxes)
        assert torch.equal(got.labels, part.labels)


def test_a_split_of_size_zero_is_not_written(tmp_path):
    write_scenes("mnist-detect", tmp_path / "det", sizes={"train": 4, "val": 2, "test": 0},
                 source="builtin")
    assert sorted(p.name for p in (tmp_path / "det").iterdir()) == ["train", "val"]


def test_non_empty_folder_needs_overwrite(tmp_path):
    folder = tmp_path / "seg"
    write_scenes("mnist-segment", folder, sizes=SIZES, source="builtin")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty; .* overwrite=True"):
        write_scenes("mnist-segment", folder, sizes=SIZES, source="builtin")
    # overwrite replaces what the format writes (no stale masks of a bigger set), keeps the rest
    small = {"train": 3, "val": 2, "test": 0}
    write_scenes("mnist-segment", folder, seed=9, sizes=small, source="builtin",
                 overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    assert not (folder / "test").exists()
    assert len(list((folder / "train" / "images").iterdir())) == 3
    back = read_masks(folder)
    assert torch.equal(back.train.masks,
                       open_scenes("mnist-segment", seed=9, sizes=small,
                                   source="builtin").train.masks)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown scene set 'mnist-classify'"):
        write_scenes("mnist-classify", tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        write_scenes("mnist-detect", tmp_path / "file")
