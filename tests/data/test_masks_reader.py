"""Tests of the segmentation folder reader and writer (cnnkit.data.masks)."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.masks import read_masks, write_masks
from cnnkit.errors import DataError


def _data(n, seed, size=(8, 10)):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, *size), generator=g, dtype=torch.uint8)
    masks = torch.randint(0, 3, (n, *size), generator=g).to(torch.uint8)
    masks[:, 0, 0] = 255
    return AnnotatedData("segment", images, ["bg", "a", "b"], masks=masks,
                         names=[f"im{seed}_{i}.png" for i in range(n)])


def _layout(root, masks=None, size=(6, 5)):
    """A one-image train/ + val/ folder with a grey image and the given (H, W) mask array."""
    (root / "classes.txt").write_text("bg\nfg\n")
    mask = np.zeros(size, np.uint8) if masks is None else masks
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        Image.fromarray(np.full(size, 7, np.uint8), mode="L").save(root / split / "images/a.png")
        Image.fromarray(mask, mode="L").save(root / split / "masks/a.png")
    return root


def test_round_trip(tmp_path):
    splits = AnnotatedSplits(_data(4, 0), _data(2, 1), _data(2, 2))
    write_masks(splits, tmp_path)
    back = read_masks(tmp_path)
    assert back.task == "segment" and back.class_names == ["bg", "a", "b"]
    for name, part in splits.parts().items():
        got = back.parts()[name]
        assert torch.equal(got.images, part.images)
        assert torch.equal(got.masks, part.masks)
        assert int(got.masks[0, 0, 0]) == 255


def test_without_val_is_a_seeded_split(tmp_path):
    write_masks(_data(10, 3), tmp_path)
    a, b = read_masks(tmp_path, val_split=0.3, seed=5), read_masks(tmp_path, val_split=0.3, seed=5)
    assert len(a.train) == 7 and len(a.val) == 3 and a.val.names == b.val.names


def test_palette_mask_is_read_by_index(tmp_path):
    _layout(tmp_path)
    mask = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    mask.putpalette([200, 10, 10, 10, 200, 10] + [0] * 762)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "train/images/a.png")
    mask.save(tmp_path / "train/masks/a.png")
    assert Image.open(tmp_path / "train/masks/a.png").mode == "P"
    data = read_masks(tmp_path, size=(2, 2)).train
    assert data.masks[0].tolist() == [[0, 1], [1, 0]]


def test_different_sizes_are_resized_masks_nearest(tmp_path):
    _layout(tmp_path)
    big = np.zeros((12, 10), np.uint8)
    big[:, 5:] = 1
    Image.fromarray(np.full((12, 10), 7, np.uint8)).save(tmp_path / "val/images/a.png")
    Image.fromarray(big).save(tmp_path / "val/masks/a.png")
    val = read_masks(tmp_path).val
    assert val.images.shape == (1, 1, 6, 5)
    assert set(val.masks.unique().tolist()) == {0, 1}
    assert val.masks[0, :, 0].tolist() == [0] * 6 and val.masks[0, :, -1].tolist() == [1] * 6


def test_missing_classes_txt(tmp_path):
    _layout(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(DataError, match="classes.txt not found"):
        read_masks(tmp_path)


def test_image_without_mask_and_mask_without_image(tmp_path):
    _layout(tmp_path)
    (tmp_path / "val/masks/a.png").rename(tmp_path / "val/masks/b.png")
    with pytest.raises(DataError, match=r"a\.png has no mask"):
        read_masks(tmp_path)
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "val/images/a.png")
    (tmp_path / "val/masks/b.png").rename(tmp_path / "val/masks/a.png")
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "val/masks/c.png")
    with pytest.raises(DataError, match=r"c\.png has no image"):
        read_masks(tmp_path)


def test_mask_size_differs_from_image(tmp_path):
    _layout(tmp_path)
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(tmp_path / "train/masks/a.png")
    with pytest.raises(DataError, match=r"masks/a\.png is 4x6 but its image .* is 5x6"):
        read_masks(tmp_path)


def test_class_index_beyond_classes_txt(tmp_path):
    mask = np.zeros((6, 5), np.uint8)
    mask[2, 2] = 2
    _layout(tmp_path, mask)
    with pytest.raises(DataError, match=r"has value 2, but classes.txt lists 2 classes"):
        read_masks(tmp_path)


def test_ignore_value_is_allowed(tmp_path):
    mask = np.full((6, 5), 255, np.uint8)
    _layout(tmp_path, mask)
    assert int(read_masks(tmp_path).train.masks.min()) == 255


def test_rgb_mask_is_refused(tmp_path):
    _layout(tmp_path)
    Image.fromarray(np.zeros((6, 5, 3), np.uint8), mode="RGB").save(tmp_path / "train/masks/a.png")
    with pytest.raises(DataError, match=r"mode 'RGB'.*single-channel"):
        read_masks(tmp_path)


def test_writer_refuses_other_tasks(tmp_path):
    data = AnnotatedData("localize", torch.zeros(1, 1, 4, 4, dtype=torch.uint8), ["a"],
                         labels=torch.zeros(1, dtype=torch.int64),
                         boxes=torch.tensor([[0.0, 0.0, 2.0, 2.0]]))
    with pytest.raises(ValueError, match="segmentation"):
        write_masks(data, tmp_path)
