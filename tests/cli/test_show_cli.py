"""``cnnkit show ...``: every command writes a valid PNG, prints its path, and has help text."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cnnkit.cli as cli
from cnnkit.cli import show

NO_RUN = ("kernels", "kernel", "conv-matrix", "signals", "augment")
WITH_RUN = ("filters", "maps", "rf", "gradcam", "saliency", "curves", "mistakes")


@pytest.fixture
def run_cli(capsys):
    """Call ``cnnkit.cli.main`` and capture what it prints."""
    def run(*argv):
        code = cli.main(["show", *map(str, argv)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def assert_png(path, min_size=(200, 150)):
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
    assert path.stat().st_size > 5_000  # a real picture, not an empty canvas


@pytest.fixture
def step_image(tmp_path):
    pixels = np.zeros((24, 32, 3), dtype=np.uint8)
    pixels[:, 16:] = 200
    path = tmp_path / "step.png"
    Image.fromarray(pixels).save(path)
    return path


def _help(run_cli, capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["show", *argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_every_show_command_has_help(run_cli, capsys):
    overview = _help(run_cli, capsys)
    for name in NO_RUN + WITH_RUN:
        assert f"    {name}" in overview, name  # listed with its one-line help
        text = _help(run_cli, capsys, name)
        assert text.startswith(f"usage: cnnkit show {name}"), name
        assert "example:" in text and len(text) > 200, name
        assert "--out" in text or name == "kernels", name


def test_kernels_lists_every_name(run_cli):
    code, out, _ = run_cli("kernels")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("sobel-x") and "3x3" in line for line in lines)
    assert any(line.startswith("curve") and "7x7" in line for line in lines)


def test_kernel_writes_before_after(run_cli, step_image, tmp_path, monkeypatch):
    out = tmp_path / "pics" / "edges.png"
    code, printed, _ = run_cli("kernel", "sobel-x", step_image, "--padding", "same", "--out", out)
    assert code == 0 and printed.strip() == str(out)
    assert_png(out)
    monkeypatch.chdir(tmp_path)  # default name in the current folder
    code, printed, _ = run_cli("kernel", "box-blur", step_image, "--stride", "2", "--color")
    assert code == 0 and printed.strip() == "kernel-box-blur.png"
    assert_png(tmp_path / "kernel-box-blur.png")


def test_kernel_errors_exit_2_with_a_message(run_cli, step_image, tmp_path):
    code, _, err = run_cli("kernel", "sobel", step_image, "--out", tmp_path / "x.png")
    assert code == 2 and "kernel 'sobel' is unknown" in err
    with pytest.raises(SystemExit) as exit_info:
        run_cli("kernel", "edge", step_image, "--padding", "sme")
    assert exit_info.value.code == 2
    code, _, err = run_cli("kernel", "edge", tmp_path / "missing.png", "--out", tmp_path / "x.png")
    assert code == 2


def test_conv_matrix(run_cli, tmp_path):
    out = tmp_path / "matrix.png"
    code, printed, _ = run_cli("conv-matrix", "--input", "5x5", "--kernel", "edge", "--stride", "2",
                               "--padding", "1", "--out", out)
    assert code == 0
    assert "5x5x1 input -> 3x3x1 output: a 9x25 matrix" in printed
    assert_png(out)


def test_signals(run_cli, tmp_path):
    out = tmp_path / "signals.png"
    assert run_cli("signals", "--out", out)[0] == 0
    assert_png(out)


# ----------------------------------------------------------------------------- with a run folder


@pytest.fixture
def data_npz(tmp_path):
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, size=(30, 1, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 3
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=images[:20], y_train=labels[:20], x_test=images[20:],
             y_test=labels[20:], class_names=np.array(["a", "b", "c"]))
    return path


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as ``cnnkit train`` writes it, for an untrained 3-class LeNet-5 on 28x28x1."""
    registry = pytest.importorskip("cnnkit.models.registry")
    run_folder_module = pytest.importorskip("cnnkit.train.run_folder")
    normalization = pytest.importorskip("cnnkit.data.normalization")
    model = registry.create("lenet5", num_classes=3, in_channels=1, input_size=(28, 28))
    run = tmp_path / "run"
    run.mkdir()
    norm = normalization.Normalization(mean=(0.5,), std=(0.25,))
    run_folder_module.write_json(run / "model.json", run_folder_module.model_metadata(
        model, ["a", "b", "c"], norm, (1, 28, 28)))
    run_folder_module.save_weights(model, run / "weights.safetensors")
    records = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "accuracy": 0.3 * e,
                "val_accuracy": 0.25 * e, "lr": 0.1 / e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


@pytest.fixture
def digit_image(tmp_path):
    pixels = np.zeros((40, 40), dtype=np.uint8)
    pixels[8:32, 16:24] = 255
    path = tmp_path / "digit.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("argv,outputs", [
    (("filters", "{run}", "--layer", "conv2"), ("out.png",)),
    (("maps", "{run}", "{image}"), ("out.png", "out-probs.png")),
    (("rf", "{run}", "--layer", "conv2", "--unit", "1,2", "--image", "{image}"), ("out.png",)),
    (("gradcam", "{run}", "{image}", "--class", "b"), ("out.png",)),
    (("saliency", "{run}", "{image}"), ("out.png",)),
    (("curves", "{run}"), ("out.png",)),
    (("mistakes", "{run}", "--data", "{data}", "--k", "4"),
     ("out.png", "out-confusion.png", "out-confusion-normalized.png", "out-per-class-accuracy.png")),
])
def test_run_commands_write_pngs(run_cli, run_folder, digit_image, data_npz, tmp_path, argv, outputs):
    values = {"run": run_folder, "image": digit_image, "data": data_npz}
    args = [a.format(**values) for a in argv]
    code, printed, err = run_cli(*args, "--out", tmp_path / "out.png")
    assert code == 0, err
    assert printed.split() == [str(tmp_path / name) for name in outputs]
    for name in outputs:
        assert_png(tmp_path / name, min_size=(150, 100))


def test_run_command_errors(run_cli, run_folder, digit_image, tmp_path):
    code, _, err = run_cli("gradcam", run_folder, digit_image, "--class", "zebra")
    assert code == 2 and "--class 'zebra' is neither a class name nor an index" in err
    code, _, err = run_cli("filters", run_folder, "--layer", "pool1")
    assert code == 2 and "layer 'pool1' is not a conv layer" in err
    code, _, err = run_cli("curves", tmp_path / "nowhere")
    assert code == 2 and "metrics.jsonl" in err


def test_augment(run_cli, data_npz, tmp_path):
    pytest.importorskip("cnnkit.augment.preview")
    out = tmp_path / "aug.png"
    code, printed, err = run_cli("augment", data_npz, "--augment", "flip", "--count", "2",
                                 "--variants", "3", "--out", out)
    assert code == 0, err
    assert_png(out, min_size=(150, 100))


def test_show_module_has_no_heavy_imports_at_start():
    source = show.__loader__.get_source(show.__name__)
    top = source.split("# ---", 1)[0]
    assert "import torch" not in top and "matplotlib" not in top


def test_spec_sequential_run(run_cli, digit_image, tmp_path):
    """A run of a cnnkit Sequential (own conv layers): maps per child, Grad-CAM on its last conv."""
    sequential = pytest.importorskip("cnnkit.models.sequential")
    run_folder_module = pytest.importorskip("cnnkit.train.run_folder")
    model = sequential.Sequential.from_spec(
        "conv(4,3,padding=1) relu maxpool(2) conv(6,3) relu flatten fc(3)", "12x12x1")
    run = tmp_path / "seq-run"
    run.mkdir()
    run_folder_module.write_json(run / "model.json", run_folder_module.model_metadata(
        model, ["a", "b", "c"], None, (1, 12, 12)))
    run_folder_module.save_weights(model, run / "weights.safetensors")
    for command in ("maps", "gradcam"):
        out = tmp_path / f"{command}.png"
        code, _, err = run_cli(command, run, digit_image, "--out", out)
        assert code == 0, err
        assert_png(out, min_size=(150, 100))
    code, _, err = run_cli("filters", run, "--layer", "3", "--out", tmp_path / "f.png")
    assert code == 0, err
