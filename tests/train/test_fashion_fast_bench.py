"""bench/fashion_fast.py: the plain network is the recipe's, and a smoke run prints both rows."""
from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest
import torch

from bench import fashion_fast
from cnnkit import Sequential
from cnnkit.train.recipes import recipe_config


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fashion_root(tmp_path):
    """A Fashion-MNIST-format folder: 512 train / 128 test 28x28 images, 10 learnable classes."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for prefix, n in (("train", 512), ("t10k", 128)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        for i, label in enumerate(labels):  # class k: a bright band at rows 2k..2k+3
            images[i, 2 * label:2 * label + 4] += 200
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_plain_network_is_the_recipes_layer_by_layer():
    ours = Sequential.from_spec(recipe_config("fashion-fast").model, (28, 28, 1), num_classes=10)
    plain = fashion_fast.plain_model()
    shapes = lambda m: [(n, tuple(p.shape)) for n, p in m.state_dict().items()]  # noqa: E731
    assert shapes(ours) == shapes(plain)
    assert len(list(ours.children())) == len(plain)
    plain.load_state_dict(ours.state_dict())  # the same weights give the same outputs
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(ours.eval()(x), plain.eval()(x), atol=1e-5, rtol=1e-4)


def test_read_idx_matches_cnnkits_reader(fashion_root):
    from cnnkit.data.idx import find_idx_pair, load_idx

    folder = fashion_root / "fashion-mnist"
    ours = load_idx(*find_idx_pair(folder, "train"))
    plain = fashion_fast.read_idx(folder / "train-images-idx3-ubyte.gz")
    assert np.array_equal(ours.images[:, 0].numpy(), plain)


def test_smoke_run_prints_both_contenders_and_the_ratio(fashion_root, capsys):
    fashion_fast.main(["--seeds", "1", "--epochs", "2", "--data-dir", str(fashion_root)])
    out = capsys.readouterr().out
    rows = {m[0].strip(): m[1:] for m in re.findall(
        r"^\| ([^|]+?)\s*\| ([\d.]+)\s*\| ([\d.]+)\s*\| ([\d.]+) ± [\d.]+\s*\| ([\d.]+)\s*\|$",
        out, re.M)}
    assert set(rows) == {"cnnkit train --recipe fashion-fast", "plain PyTorch loop"}, out
    for wall, train, acc, worst in rows.values():
        assert float(wall) > float(train) > 0
        assert float(acc) > 50  # the bands are easy: both really learn in 2 epochs
    ratio = re.search(r"^\| ratio cnnkit / plain PyTorch\s*\| ([\d.]+)×", out, re.M)
    walls = [float(rows[k][0]) for k in ("cnnkit train --recipe fashion-fast", "plain PyTorch loop")]
    # the table rounds seconds to 0.1 s and the ratio to 0.01: bound it by the rounded walls
    low, high = (walls[0] - 0.05) / (walls[1] + 0.05), (walls[0] + 0.05) / (walls[1] - 0.05)
    assert low - 0.005 <= float(ratio.group(1)) <= high + 0.005
