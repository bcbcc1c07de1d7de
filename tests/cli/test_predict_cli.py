"""cnnkit predict: bad input exits 2 with one line."""
import pytest

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
