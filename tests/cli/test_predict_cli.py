"""cnnkit predict: bad input exits 2 with one line; the backends print the same predictions."""
import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "run"
    assert main(["train", "--epochs", "1", "--device", "cpu", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def test_bad_predict_input_exits_2(run, tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    cases = [
        (["predict", "/no/such/run", str(tmp_path)], "does not exist"),
        (["predict", str(run), str(tmp_path / "missing*.png")], "no image files found"),
        (["predict", str(run), str(tmp_path / "broken.png")], "broken.png"),
        (["predict", str(run), str(tmp_path / "broken.png"), "--top", "0"], "--top must be >= 1"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_json_and_csv_are_exclusive(run, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(run), "x.png", "--json", "--csv"])
    assert exc.value.code == 2


def test_backends_print_the_same_predictions(run, tmp_path, capsys, caplog):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                              "'cnnkit[onnx]'); --backend onnxruntime needs it")
    # A copy without the export cache that other tests of this module may have written.
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns(".cache"))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(images / f"{k}.png")
    printed = {}
    # The default (auto) exports only for 1024 images or more; then it uses the cached export.
    for backend in (None, "torch", "onnxruntime", "auto"):
        argv = ["predict", str(run), str(images), "--json", "--top", "10"]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cnnkit.export.runtime"):
            assert main(argv + (["--backend", backend] if backend else [])) == 0
        printed[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        if backend in (None, "torch"):
            assert not (run / ".cache").exists()  # nothing written into the run folder
        assert ("predict backend: onnxruntime" in caplog.text) == (backend in ("onnxruntime",
                                                                               "auto"))
    assert (run / ".cache").is_dir()
    for fast, default in ((printed["onnxruntime"], printed["torch"]),
                          (printed["auto"], printed["torch"]),
                          (printed[None], printed["torch"])):
        assert [item["file"] for item in fast] == [item["file"] for item in default]
        for a, b in zip(fast, default):
            probs = {p["class"]: p["probability"] for p in b["predictions"]}
            assert sorted(p["class"] for p in a["predictions"]) == sorted(probs)
            np.testing.assert_allclose([p["probability"] for p in a["predictions"]],
                                       [probs[p["class"]] for p in a["predictions"]],
                                       rtol=1e-4, atol=1e-6)
