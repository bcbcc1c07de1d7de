"""The loader base shared by InMemoryLoader, StreamingLoader and TensorBatches: same order for
the same seed, same argument errors, dict targets, resumable state."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.annotated import AnnotatedData
from cnnkit.data.batching import EpochLoader
from cnnkit.data.dataset import ImageData
from cnnkit.data.loader import InMemoryLoader, TensorBatches
from cnnkit.data.stream import StreamingLoader

N = 23


def _images(n=N, h=4, w=4):
    # Pixel (0, 0, 0) of image i holds i, so every batch tells which images it holds.
    images = torch.randint(0, 256, (n, 1, h, w), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return images


def _image_data(n=N):
    return ImageData(_images(n), torch.arange(n) % 3, ["a", "b", "c"])


def _ids(loader):
    """Sample ids of each batch of one pass (pixel 0 of an image, row 0 of a tensor)."""
    out = []
    for x, _ in loader:
        # images: float (B, 1, H, W) with identity normalisation; tensors: int (B, 1)
        first = (x[:, 0, 0, 0] * 255).round() if x.dim() == 4 else x[:, 0]
        out.append(first.long().tolist())
    return out


def _reference_ids(n, *, batch_size, seed, epoch):
    """The order TensorBatches used before the shared base: randperm seeded with seed + epoch."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


@pytest.mark.parametrize("seed", [0, 7])
def test_in_memory_and_tensor_batches_give_the_same_batches_as_before(seed):
    memory = InMemoryLoader(_image_data(), batch_size=5, seed=seed)
    tensors = TensorBatches(torch.arange(N).unsqueeze(1), torch.arange(N), batch_size=5,
                            shuffle=True, seed=seed)
    for epoch in range(3):
        memory.set_epoch(epoch)
        tensors.set_epoch(epoch)
        expected = _reference_ids(N, batch_size=5, seed=seed, epoch=epoch)
        assert _ids(memory) == _ids(tensors) == expected


def test_shards_and_drop_last_agree_between_loaders():
    kwargs = {"batch_size": 4, "shuffle": True, "seed": 3, "drop_last": True, "world_size": 2}
    for rank in (0, 1):
        memory = InMemoryLoader(_image_data(), rank=rank, **kwargs)
        tensors = TensorBatches(torch.arange(N).unsqueeze(1), None, rank=rank, **kwargs)
        assert len(memory) == len(tensors) == 3  # ceil(23 / 2) = 12 samples, 12 // 4
        assert _ids(memory) == _ids(tensors)


def test_tensor_batches_yield_rows_of_x_and_y_unchanged():
    x = torch.randn(N, 2, 3)
    y = torch.randint(0, 5, (N,))
    batches = TensorBatches(x, y, batch_size=6, shuffle=True, seed=1)
    order = batches.epoch_order()
    got_x = torch.cat([xb for xb, _ in batches])
    batches.set_epoch(0)
    got_y = torch.cat([yb for _, yb in batches])
    assert torch.equal(got_x, x[order]) and torch.equal(got_y, y[order])


def test_a_finished_pass_advances_the_epoch_and_state_resumes_mid_epoch():
    batches = TensorBatches(torch.arange(N).unsqueeze(1), None, batch_size=4, shuffle=True)
    first = _ids(batches)
    assert batches.epoch == 1 and _ids(batches) != first
    batches.set_epoch(0)
    it = iter(batches)
    next(it), next(it)
    state = batches.state_dict()
    assert state == {"seed": 0, "epoch": 0, "batch": 2}
    resumed = TensorBatches(torch.arange(N).unsqueeze(1), None, batch_size=4, shuffle=True)
    resumed.load_state_dict(state)
    assert _ids(resumed) == first[2:]


@pytest.fixture
def files(tmp_path, image_writer):
    paths = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        image_writer(path, np.full((1, 4, 4), i, dtype=np.uint8))
        paths.append((path, i % 2))
    return paths


BAD_ARGUMENTS = [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be a positive int, got 2.5"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, got 'yes'"),
    ({"drop_last": 1}, TypeError, "drop_last must be True or False, got 1"),
    ({"seed": "0"}, TypeError, "seed must be an int, got '0'"),
    ({"world_size": 0}, ValueError, "world_size must be >= 1, got 0"),
    ({"rank": 2, "world_size": 2}, ValueError,
     r"rank must be an int in \[0, world_size=2\), got 2"),
]


@pytest.mark.parametrize("make", ["memory", "stream", "tensors"])
@pytest.mark.parametrize(("bad", "error", "message"), BAD_ARGUMENTS)
def test_every_loader_rejects_the_same_bad_argument_with_the_same_message(make, bad, error,
                                                                          message, files):
    kwargs = {"batch_size": 2, **bad}
    with pytest.raises(error, match=f"^{message}$"):
        if make == "memory":
            InMemoryLoader(_image_data(), **kwargs)
        elif make == "stream":
            StreamingLoader(files, ["even", "odd"], num_workers=0, **kwargs)
        else:
            TensorBatches(torch.zeros(N, 2), None, **kwargs)


def test_every_loader_is_an_epoch_loader():
    assert issubclass(InMemoryLoader, EpochLoader)
    assert issubclass(StreamingLoader, EpochLoader)
    assert issubclass(TensorBatches, EpochLoader)


def test_tensor_batches_still_importable_from_train():
    from cnnkit.train.batches import TensorBatches as OldName
    assert OldName is TensorBatches


def test_tensor_batches_with_dict_targets_keep_rows_together():
    ids = torch.arange(N)
    y = {"labels": ids % 3, "boxes": ids.float().unsqueeze(1).repeat(1, 4),
         "masks": ids.to(torch.uint8).view(N, 1, 1).expand(N, 3, 3).contiguous()}
    seen = []
    for xb, yb in TensorBatches(ids.unsqueeze(1), y, batch_size=5, shuffle=True, seed=2):
        rows = xb[:, 0]
        assert set(yb) == {"labels", "boxes", "masks"}
        assert yb["boxes"].shape == (len(rows), 4) and yb["masks"].shape == (len(rows), 3, 3)
        assert torch.equal(yb["labels"], rows % 3)
        assert torch.equal(yb["boxes"][:, 2], rows.float())
        assert torch.equal(yb["masks"][:, 1, 1], rows.to(torch.uint8))
        seen.extend(rows.tolist())
    assert sorted(seen) == list(range(N))


def test_in_memory_loader_yields_the_dict_targets_of_annotated_data():
    images = _images(6, h=8, w=8)
    ids = torch.arange(6)
    boxes = torch.stack([ids.float(), ids.float(), ids.float() + 2, ids.float() + 2], dim=1)
    data = AnnotatedData("localize", images, ["digit", "other"], labels=ids % 2, boxes=boxes)
    loader = InMemoryLoader(data, batch_size=4, seed=5)
    for x, y in loader:
        rows = (x[:, 0, 0, 0] * 255).round().long()
        assert set(y) == {"labels", "boxes"}
        assert torch.equal(y["labels"], rows % 2)
        assert torch.equal(y["boxes"], boxes[rows])


def test_dict_targets_with_another_sample_count_are_rejected():
    y = {"labels": torch.zeros(N, dtype=torch.long), "boxes": torch.zeros(N - 1, 4)}
    with pytest.raises(ValueError, match=r"x has 23 samples but y\['boxes'\] has 22 "
                                         r"\(shape \(22, 4\)\); give one target per input"):
        TensorBatches(torch.zeros(N, 2), y, batch_size=4)
    with pytest.raises(TypeError, match=r"y\['boxes'\] must be a tensor, got list"):
        TensorBatches(torch.zeros(N, 2), {"boxes": [0] * N}, batch_size=4)
