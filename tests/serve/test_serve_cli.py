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
