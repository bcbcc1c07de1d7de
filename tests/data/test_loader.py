"""InMemoryLoader: determinism, coverage, drop_last, sharding, resume, normalisation, errors."""
from __future__ import annotations

import pytest
import torch

from cnnkit.data.dataset import ImageData
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization


def _data(n=50, c=1, h=4, w=4, classes=5):
    # Pixel (0, 0, 0) of image i holds i, so every batch tells which images it holds.
    images = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageData(images, labels, [str(k) for k in range(classes)])


def _ids(batches):
    """Image ids of each batch (from pixel 0 with the identity normalisation)."""
    return [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in batches]


def test_batches_are_normalised_float_with_matching_labels():
    data = _data()
    norm = Normalization.fit(data.images)
    x, y = next(iter(InMemoryLoader(data, batch_size=8, normalization=norm, shuffle=False)))
    assert x.dtype == torch.float32 and x.shape == (8, 1, 4, 4)
    assert y.dtype == torch.int64 and y.shape == (8,)
    torch.testing.assert_close(x, norm.apply(data.images[:8]))
    assert torch.equal(y, data.labels[:8])


def test_every_index_exactly_once_per_epoch_and_len():
    loader = InMemoryLoader(_data(n=50), batch_size=8)
    batches = list(loader)
    assert len(batches) == len(loader) == 7
    assert [len(b) for b in _ids(batches)] == [8] * 6 + [2]
    assert sorted(i for b in _ids(batches) for i in b) == list(range(50))


def test_labels_follow_their_images_after_shuffling():
    data = _data()
    for x, y in InMemoryLoader(data, batch_size=16, seed=3):
        ids = (x[:, 0, 0, 0] * 255).round().long()
        assert torch.equal(y, data.labels[ids])


def test_drop_last_skips_the_short_batch():
    loader = InMemoryLoader(_data(n=50), batch_size=8, drop_last=True)
    batches = _ids(loader)
    assert len(loader) == len(batches) == 6 and all(len(b) == 8 for b in batches)


def test_same_seed_same_batches_and_new_order_each_epoch():
    a = InMemoryLoader(_data(), batch_size=10, seed=7)
    b = InMemoryLoader(_data(), batch_size=10, seed=7)
    epoch0_a, epoch0_b = _ids(a), _ids(b)
    assert epoch0_a == epoch0_b
    epoch1_a = _ids(a)
    assert epoch1_a != epoch0_a and a.epoch == 2
    assert _ids(InMemoryLoader(_data(), batch_size=10, seed=8)) != epoch0_a


def test_set_epoch_reproduces_an_epoch_and_shuffle_false_keeps_order():
    loader = InMemoryLoader(_data(), batch_size=10, seed=1)
    first = _ids(loader)
    _ids(loader)
    loader.set_epoch(0)
    assert _ids(loader) == first
    plain = InMemoryLoader(_data(n=20), batch_size=10, shuffle=False)
    assert _ids(plain) == _ids(plain) == [list(range(10)), list(range(10, 20))]


def test_an_abandoned_pass_restarts_the_same_epoch():
    loader = InMemoryLoader(_data(), batch_size=10)
    peek = _ids([next(iter(loader))])
    assert loader.epoch == 0
    assert _ids(loader)[:1] == peek


def test_state_dict_resumes_mid_epoch_exactly():
    loader = InMemoryLoader(_data(), batch_size=10, seed=4)
    loader.set_epoch(3)
    reference = InMemoryLoader(_data(), batch_size=10, seed=4)
    reference.set_epoch(3)
    full = _ids(reference)
    it = iter(loader)
    got = _ids([next(it), next(it)])
    state = loader.state_dict()
    assert state == {"seed": 4, "epoch": 3, "batch": 2}
    resumed = InMemoryLoader(_data(), batch_size=10, seed=0)
    resumed.load_state_dict(state)
    assert got + _ids(resumed) == full
    assert resumed.state_dict() == {"seed": 4, "epoch": 4, "batch": 0}


def test_shards_cover_the_epoch_without_overlap():
    data = _data(n=40)
    shards = [_ids(InMemoryLoader(data, batch_size=6, seed=2, rank=r, world_size=4)) for r in range(4)]
    flat = [i for shard in shards for b in shard for i in b]
    assert sorted(flat) == list(range(40))
    uneven = [InMemoryLoader(_data(n=42), batch_size=100, rank=r, world_size=4) for r in range(4)]
    assert all(loader.num_samples == 11 for loader in uneven)


def test_augment_is_applied_to_the_float_batch_and_channels_last():
    def flip(x, y):
        return x.flip(-1), y

    data = _data(c=3)
    x, _ = next(iter(InMemoryLoader(data, batch_size=4, shuffle=False, augment=flip,
                                    channels_last=True)))
    torch.testing.assert_close(x, data.images[:4].flip(-1).float() / 255)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_device_cpu_object_and_string():
    loader = InMemoryLoader(_data(), batch_size=4, device=torch.device("cpu"))
    x, y = next(iter(loader))
    assert x.device.type == y.device.type == "cpu"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"batch_size": 4, "rank": 2, "world_size": 2}, ValueError, r"rank must be an int in \[0, world_size=2\), got 2"),
    ({"batch_size": 4, "normalization": Normalization((0.5,) * 3, (0.5,) * 3)}, ValueError,
     "normalization has 3 channel.*images have 1"),
    ({"batch_size": 4, "augment": "flip"}, TypeError, "augment must be a callable"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        InMemoryLoader(_data(), **kwargs)


def test_load_state_dict_rejects_a_batch_past_the_end():
    loader = InMemoryLoader(_data(n=20), batch_size=10)
    with pytest.raises(ValueError, match="batch=5 is outside this loader's 0..2 batches"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "batch": 5})


def test_augment_sees_the_0_to_1_batch_before_mean_std_normalisation():
    seen = {}

    def spy(x, y):
        seen["min"], seen["max"] = float(x.min()), float(x.max())
        return x, y

    data = _data(c=3)
    norm = Normalization(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x, _ = next(iter(InMemoryLoader(data, batch_size=4, shuffle=False, augment=spy,
                                    normalization=norm)))
    assert 0.0 <= seen["min"] and seen["max"] <= 1.0
    torch.testing.assert_close(x, norm.apply(data.images[:4]))
