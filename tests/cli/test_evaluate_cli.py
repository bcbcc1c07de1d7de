"""cnnkit evaluate: bad input exits 2 with one line."""
import pytest

from cnnkit.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", "--epochs", "1", "--device", "cpu", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def test_text_report_has_the_table_and_the_matrix(run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val", "--png", str(run / "cm.png")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("val: 144 images, accuracy ")
    assert "precision  recall" in out and "true \\ predicted" in out
    assert (run / "cm.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "/no/such/run"], "run folder '/no/such/run' does not exist"),
    (["evaluate", "{run}", "--data", "no-such-data"], "cnnkit: error:"),
    (["evaluate", "{run}", "--data", "shapes"], "has classes"),
])
def test_bad_evaluate_input_exits_2(run, argv, message, capsys):
    assert main([a.format(run=run) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
