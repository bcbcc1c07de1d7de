"""StreamingLoader: decoded batches equal the in-memory reader's, epochs, workers, bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.folder import load_image_folder
from cnnkit.data.normalization import Normalization
from cnnkit.data.stream import StreamingLoader
from cnnkit.errors import DataError

N_PER_CLASS = 5


@pytest.fixture
def folder(tmp_path, image_writer):
    """3 classes x 5 grayscale 6x6 PNGs; pixel (0, 0) of image i is i."""
    rng = np.random.default_rng(0)
    i = 0
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        for k in range(N_PER_CLASS):
            pixels = rng.integers(0, 256, (1, 6, 6), dtype=np.uint8)
            pixels[0, 0, 0] = i
            image_writer(tmp_path / name / f"{k}.png", pixels)
            i += 1
    return tmp_path


def _ids(batches):
    return [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in batches]


def test_batches_equal_the_in_memory_reader_normalised(folder):
    data = load_image_folder(folder)
    norm = Normalization.fit(data.images)
    loader = StreamingLoader.from_folder(folder, batch_size=4, shuffle=False, normalization=norm,
                                         num_workers=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    x = torch.cat([x for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    torch.testing.assert_close(x, norm.apply(data.images))
    assert torch.equal(y, data.labels) and loader.class_names == ["a", "b", "c"]
    assert x.dtype == torch.float32 and y.dtype == torch.int64


def test_workers_give_the_same_seeded_batches_and_epochs_differ(folder):
    in_process = StreamingLoader.from_folder(folder, batch_size=4, seed=5, num_workers=0)
    workers = StreamingLoader.from_folder(folder, batch_size=4, seed=5, num_workers=2)
    epoch0 = _ids(workers)
    assert epoch0 == _ids(in_process)
    assert sorted(i for b in epoch0 for i in b) == list(range(15))
    epoch1 = _ids(workers)  # the persistent workers serve the next epoch's order
    assert epoch1 != epoch0 and sorted(i for b in epoch1 for i in b) == list(range(15))
    workers.set_epoch(0)
    assert _ids(workers) == epoch0


def test_resize_channels_and_drop_last(folder):
    loader = StreamingLoader.from_folder(folder, batch_size=4, size=(8, 10), channels=3,
                                         drop_last=True, num_workers=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    assert all(x.shape == (4, 3, 8, 10) for x, _ in batches)


def test_state_dict_resumes_mid_epoch(folder):
    loader = StreamingLoader.from_folder(folder, batch_size=4, seed=2, num_workers=0)
    full = _ids(StreamingLoader.from_folder(folder, batch_size=4, seed=2, num_workers=0))
    it = iter(loader)
    first = _ids([next(it)])
    state = loader.state_dict()
    assert state == {"seed": 2, "epoch": 0, "batch": 1}
    resumed = StreamingLoader.from_folder(folder, batch_size=4, num_workers=0)
    resumed.load_state_dict(state)
    assert first + _ids(resumed) == full


def test_unreadable_files_are_skipped_and_counted_or_raise_when_strict(folder):
    (folder / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    loader = StreamingLoader.from_folder(folder, batch_size=8, shuffle=False, num_workers=0)
    seen = sum(len(y) for _, y in loader)
    assert seen == 15 and [p.endswith("broken.png") for p in loader.skipped] == [True]
    strict = StreamingLoader.from_folder(folder, batch_size=8, shuffle=False, strict=True,
                                         num_workers=0)
    with pytest.raises(DataError, match="broken.png"):
        list(strict)


def test_raw_batches_fit_the_same_normalisation(folder):
    loader = StreamingLoader.from_folder(folder, batch_size=4, num_workers=0)
    fitted = Normalization.fit_batches(loader.raw_batches())
    assert fitted == Normalization.fit(load_image_folder(folder).images)


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match="num_workers must be an int >= 0"):
        StreamingLoader.from_folder(folder, batch_size=4, num_workers=-1)
    with pytest.raises(ValueError, match="normalization has 3 channel.*decoded with 1"):
        StreamingLoader.from_folder(folder, batch_size=4, num_workers=0,
                                    normalization=Normalization((0.5,) * 3, (0.5,) * 3))
    with pytest.raises(DataError, match="got no image files"):
        StreamingLoader([], ["a"], batch_size=4)
