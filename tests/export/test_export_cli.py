"""``cnnkit export``: writes a verified file, prints its path, maps bad input to exit code 2."""
import pytest

from cnnkit import cli
from cnnkit.export import read_onnx_metadata


@pytest.fixture
def run_cli():
    """cnnkit's main()."""
    return cli.main


def test_export_onnx_default_path(run_cli, run_dir, capsys):
    assert run_cli(["export", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run_dir / 'model.onnx'}" in out
    # it says what re-ran the file and on what inputs (issue #18 item 7)
    assert ("verified: onnxruntime (CPU) gave the same outputs as the PyTorch model on random "
            "uint8 images at batch sizes 1, 3, 8 (rtol 0.001, atol 0.0001)") in out
    assert read_onnx_metadata(run_dir / "model.onnx")["class_names"] == ["cat", "dog", "eel"]


@pytest.mark.parametrize("fmt, name", [("torchscript", "m.pt"), ("torch.export", "m.pt2")])
def test_export_other_formats(run_cli, run_dir, tmp_path, capsys, fmt, name):
    assert run_cli(["export", str(run_dir), "--format", fmt, "--out", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / name).is_file() and fmt in out
    assert f"verified: the reloaded {'TorchScript file' if fmt == 'torchscript' else 'torch.export program'}" in out


def test_bad_export_input_exits_2(run_cli, run_dir, tmp_path, capsys):
    cases = [
        (["export", str(tmp_path / "missing")], "does not exist"),
        (["export", str(run_dir), "--format", "torchscript", "--opset", "17"],
         "--opset applies to --format onnx only"),
        (["export", str(run_dir), "--format", "torch.export", "--out", str(tmp_path / "x.pt")],
         "must end in .pt2"),
    ]
    for argv, message in cases:
        assert run_cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_export_has_help(run_cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["export", "--help"])
    assert exit_info.value.code == 0
    assert "checked against PyTorch" in capsys.readouterr().out
