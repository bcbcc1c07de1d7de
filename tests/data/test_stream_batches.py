"""StreamingLoader decodes a whole batch per worker call: the same pixels, labels and skips."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import stream
from cnnkit.data.folder import load_image_folder
from cnnkit.data.stream import StreamingLoader
from cnnkit.errors import DataError


@pytest.fixture
def mixed_folder(tmp_path):
    """2 classes of colour images in several formats and sizes, one JPEG turned by EXIF.

    Pixel (0, 0) of the red channel of image i (in sorted file order) is 40 * i, before any
    resizing, so a batch row can be traced back to its file.
    """
    rng = np.random.default_rng(3)
    shapes = [(12, 16), (16, 12), (10, 10), (14, 20), (9, 15), (20, 14)]
    suffixes = [".png", ".bmp", ".png", ".jpg", ".png", ".webp"]
    for i, ((h, w), suffix) in enumerate(zip(shapes, suffixes)):
        folder = tmp_path / ("a" if i < 3 else "b")
        folder.mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[0, 0, 0] = 40 * i
        extra = {}
        if suffix == ".jpg":
            exif = Image.Exif()
            exif[0x0112] = 8  # turn 90 degrees to display
            extra = {"exif": exif, "quality": 95}
        Image.fromarray(pixels).save(folder / f"{i}{suffix}", **extra)
    return tmp_path


@pytest.mark.parametrize("resize", ["crop", "stretch", "pad"])
@pytest.mark.parametrize("channels", [1, 3])
def test_batches_equal_the_in_memory_reader(mixed_folder, resize, channels):
    expected = load_image_folder(mixed_folder, size=(8, 12), channels=channels, resize=resize)
    loader = StreamingLoader.from_folder(mixed_folder, batch_size=4, shuffle=False,
                                         size=(8, 12), channels=channels, resize=resize,
                                         num_workers=0)
    raw = torch.cat(list(loader.raw_batches()))
    assert raw.dtype == torch.uint8 and raw.shape == (6, channels, 8, 12)
    assert torch.equal(raw, expected.images)
    assert torch.equal(torch.cat([y for _, y in loader]), expected.labels)


@pytest.mark.parametrize("pickle_below", [0, 1 << 30], ids=["shared-memory", "pickled"])
def test_worker_batches_equal_the_in_memory_reader(mixed_folder, monkeypatch, pickle_below):
    """Batches cross from the workers either way (small ones pickled, large ones shared)."""
    monkeypatch.setattr(stream, "PICKLE_BELOW_BYTES", pickle_below)  # read in the workers
    expected = load_image_folder(mixed_folder, size=(8, 12), channels=3)
    loader = StreamingLoader.from_folder(mixed_folder, batch_size=4, shuffle=False,
                                         size=(8, 12), channels=3, num_workers=2)
    assert torch.equal(torch.cat(list(loader.raw_batches())), expected.images)
    x = torch.cat([x for x, _ in loader])
    torch.testing.assert_close(x, expected.images.float() / 255)


def test_a_bad_file_in_a_worker_batch_is_dropped_with_its_label(tmp_path):
    """Class a: images 0, 1, broken, 2; class b: 3, 4. Pixel (0, 0) of image i is 10 * i."""
    for i, name in enumerate(["a/0.png", "a/1.png", "b/3.png", "b/4.png", "a/2.png"]):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        pixels = np.full((4, 4), 10 * int(name[2]), np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
    (tmp_path / "a" / "1b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    loader = StreamingLoader.from_folder(tmp_path, batch_size=3, shuffle=False, num_workers=2)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [2, 3]  # the first batch lost its broken file
    ids = [round(v) for x, _ in batches for v in (x[:, 0, 0, 0] * 25.5).tolist()]
    labels = [v for _, y in batches for v in y.tolist()]
    assert ids == [0, 1, 2, 3, 4] and labels == [0, 0, 0, 1, 1]
    assert [p.endswith("1b_broken.png") for p in loader.skipped] == [True]

    strict = StreamingLoader.from_folder(tmp_path, batch_size=3, shuffle=False, strict=True,
                                         num_workers=2)
    with pytest.raises(DataError, match=r"1b_broken\.png"):
        list(strict)


def test_dataset_items_one_at_a_time_and_by_batch(tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(3):
        Image.fromarray(np.full((5, 6), 50 * i, np.uint8)).save(tmp_path / "a" / f"{i}.png")
    (tmp_path / "a" / "3.png").write_bytes(b"not an image")
    loader = StreamingLoader.from_folder(tmp_path, batch_size=4, num_workers=0)
    dataset = loader.dataset
    image, label, path = dataset[1]
    assert image.shape == (1, 5, 6) and image.dtype == torch.uint8 and int(image[0, 0, 0]) == 50
    assert label == 0 and path.endswith("1.png")
    assert dataset[3][0] is None and dataset[3][2].endswith("3.png")
    images, labels, skipped = dataset.__getitems__([2, 3, 0])
    assert images.shape == (2, 1, 5, 6) and images[:, 0, 0, 0].tolist() == [100, 0]
    assert labels.tolist() == [0, 0] and [p.endswith("3.png") for p in skipped] == [True]
    assert dataset.__getitems__([3])[0] is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_cuda_batches_arrive_pinned_and_equal(tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(5):
        Image.fromarray(np.full((4, 4), 30 * i, np.uint8)).save(tmp_path / "a" / f"{i}.png")
    cpu = StreamingLoader.from_folder(tmp_path, batch_size=2, shuffle=False, num_workers=2)
    cuda = StreamingLoader.from_folder(tmp_path, batch_size=2, shuffle=False, num_workers=2,
                                       device="cuda")
    batch = next(iter(cuda._loader))
    assert batch.images.is_pinned() and batch.labels.is_pinned()
    for (x, y), (xc, yc) in zip(cpu, cuda, strict=True):
        assert xc.is_cuda and torch.equal(x, xc.cpu()) and torch.equal(y, yc.cpu())
