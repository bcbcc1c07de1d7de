"""Big image folders stream from disk (``stream``); named datasets honour ``download``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.cli import main
from cnnkit.data.folder import load_image_folder
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import train
from cnnkit.train.run_folder import load_run


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    """train/ and test/ folders of 12×12 grey PNGs; the class is the bright quadrant."""
    root = tmp_path_factory.mktemp("quadrants")
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 12)):
        for k, name in enumerate(["top-left", "top-right", "bottom-left", "bottom-right"]):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (12, 12)).astype(np.uint8)
                r, c = divmod(k, 2)
                pixels[6 * r:6 * r + 6, 6 * c:6 * c + 6] += 180
                Image.fromarray(pixels, mode="L").save(root / split / name / f"{i}.png")
    return root


def test_a_streamed_folder_trains_like_the_same_folder_in_memory(quadrants, tmp_path):
    def run(stream: bool):
        config = TrainConfig(data=str(quadrants), stream=stream, epochs=3, batch_size=16,
                             lr=3e-3, device="cpu", model="conv(8,3) relu maxpool(2) fc(4)",
                             out=str(tmp_path / f"stream-{stream}"))
        return train(config, progress=False)

    streamed, in_memory = run(True), run(False)
    assert streamed.results["test_accuracy"] > 0.9
    # Same files, same order per epoch, same normalisation up to the sample it was fitted on.
    assert streamed.results["test_accuracy"] == pytest.approx(
        in_memory.results["test_accuracy"], abs=0.1)
    loaded = load_run(streamed.out)
    test = load_image_folder(quadrants / "test")
    predicted = loaded.predict(test.images)
    accuracy = np.mean([p == test.class_names[t] for p, t in zip(predicted, test.labels)])
    assert accuracy == pytest.approx(streamed.results["test_accuracy"])


def test_streaming_needs_an_image_folder(tmp_path):
    with pytest.raises(ValueError, match="stream=True needs a folder of class sub-folders"):
        train(TrainConfig(data="digits", stream=True, epochs=1, out=str(tmp_path / "r")),
              progress=False)


def test_no_download_names_the_missing_files(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    code = main(["train", "--data", "mnist", "--data-dir", str(empty), "--no-download",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err


def test_streamed_validation_split_is_stratified_and_seeded(quadrants):
    from cnnkit.data.stream import folder_file_splits

    a = folder_file_splits(quadrants / "train", val_split=0.25, seed=3)
    b = folder_file_splits(quadrants / "train", val_split=0.25, seed=3)
    assert a == b and len(a.val) == 40 and len(a.train) == 120
    counts = torch.bincount(torch.tensor([label for _, label in a.val]))
    assert counts.tolist() == [10, 10, 10, 10]
