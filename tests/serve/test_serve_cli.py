"""``cnnkit serve``: help text and argument errors (the live server is tested in test_browser)."""
import pytest

from cnnkit import cli


@pytest.fixture
def run_cli():
    """cnnkit's main()."""
    return cli.main


def test_serve_has_help(run_cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--max-batch" in out and "/predict" in out and "127.0.0.1" in out
    assert "--backend {auto,torch,onnxruntime}" in out and "--read-timeout" in out
    assert "--spinning {never,run,always}" in out


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "--port must be in 1..65535"),
    (["--max-batch", "0"], "max_batch must be"),
    (["--max-upload-mb", "-1"], "--max-upload-mb must be > 0"),
    (["--timeout", "0"], "timeout_s must be > 0"),
    (["--read-timeout", "0"], "read_timeout_s must be > 0"),
])
def test_bad_serve_arguments_exit_2(run_cli, run_dir, capsys, argv, message):
    assert run_cli(["serve", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_serve_missing_run_exits_2(run_cli, tmp_path, capsys):
    assert run_cli(["serve", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_spinning_reaches_the_servers_config(run_dir):
    from cnnkit.cli import build_parser
    from cnnkit.cli.serve import SPINNING_CHOICES, serve_config
    from cnnkit.export.onnx import SPINNING_MODES

    assert SPINNING_CHOICES == SPINNING_MODES  # the CLI's copy of the modes
    parser = build_parser()
    assert serve_config(parser.parse_args(["serve", str(run_dir)])).spinning == "never"
    for mode in SPINNING_MODES:
        args = parser.parse_args(["serve", str(run_dir), "--spinning", mode])
        assert serve_config(args).spinning == mode
    args = parser.parse_args(["serve", str(run_dir), "--max-batch", "7", "--timeout", "3"])
    config = serve_config(args)
    assert (config.batch.max_batch, config.batch.timeout_s) == (7, 3.0)


def test_bad_spinning_exits_2(run_cli, run_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["serve", str(run_dir), "--spinning", "sometimes"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--spinning" in err and "never" in err and "Traceback" not in err
