"""cnnkit train end to end (train -> evaluate -> predict on PNG files), exit codes, bad input."""
import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["train", "--epochs", "3", "--batch-size", "64", "--device", "cpu",
               "--out", str(run), "--no-progress"])
    assert rc == 0
    return run


def test_train_prints_one_line_per_epoch_and_the_test_score(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--epochs", "2", "--lr", "0.003", "--optimizer", "adam",
               "--device", "cpu", "--out", str(run), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("epoch 1/2  loss ") and "val_acc" in lines[0]
    assert lines[1].startswith("epoch 2/2")
    assert "test accuracy" in out and f"run folder: {run}" in out
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_train_from_a_yaml_config_with_flags_overriding(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"epochs: 3\nout: {tmp_path / 'run'}\ndevice: cpu\nschedule: constant\n")
    assert main(["train", "--config", str(cfg), "--epochs", "1", "--no-progress"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["epochs"], saved["schedule"]) == (1, "constant")


def test_train_evaluate_predict_end_to_end(trained_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(trained_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    results = json.loads((trained_run / "results.json").read_text())
    assert report["accuracy"] == pytest.approx(results["test_accuracy"])
    assert report["accuracy"] > 0.9 and len(report["confusion_matrix"]) == 10
    assert (trained_run / "confusion_test.png").is_file()

    from cnnkit.data.open import open_data

    test = open_data("digits").test
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(folder / f"img{i:02d}.png")
    assert main(["predict", str(trained_run), str(folder), "--top", "3", "--json"]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(items) == 20 and all(len(it["predictions"]) == 3 for it in items)
    predicted = np.array([int(it["predictions"][0]["class"]) for it in items])
    assert (predicted == test.labels[:20].numpy()).mean() >= 0.8
    probs = [p["probability"] for p in items[0]["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6

    assert main(["predict", str(trained_run), str(folder / "img0*.png"), "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "file,rank,class,probability" and len(rows) == 1 + 10 * 3


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epoch", "3"])  # no abbreviations: --epoch is not --epochs
    assert exc.value.code == 2
    assert "unrecognized arguments: --epoch" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "no-such-data", "--epochs", "1"], "cnnkit: error:"),
    (["train", "--resume", "/no/such/run"], "cannot resume '/no/such/run'"),
    (["train", "--optimizer", "adamm"], "did you mean 'adam'"),
    (["train", "--resume", "/no/such/run", "--epochs", "3"], "remove --epochs"),
])
def test_bad_train_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    argv = [*argv, "--no-progress"] if "--resume" not in argv else argv
    if "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_says_how_to_resume(monkeypatch, tmp_path, capsys):
    import cnnkit.train.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train", interrupted)
    assert main(["train", "--out", str(tmp_path / "r"), "--no-progress"]) == 130
    assert f"cnnkit train --resume {tmp_path / 'r'}" in capsys.readouterr().err


def test_lr_find_prints_a_suggestion(capsys):
    assert main(["lr-find", "--steps", "20", "--batch-size", "128"]) == 0
    assert "suggested lr:" in capsys.readouterr().out
    assert main(["lr-find", "--min-lr", "1", "--max-lr", "0.1"]) == 2


def _png_folder(root, per_class=12):
    rng = np.random.default_rng(0)
    for label, value in (("dark", 40), ("light", 210)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(value, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / label / f"{i}.png")
    return root


def test_the_next_steps_hint_names_a_split_the_run_can_be_evaluated_on(tmp_path, capsys):
    """No test split: the printed `cnnkit evaluate` line uses --split val, and that command runs."""
    folder = _png_folder(tmp_path / "images")
    run = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--model", "conv(4,3) relu maxpool(2) fc(2)",
                 "--epochs", "1", "--val-split", "0.25", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    hint = next(line for line in out.splitlines() if "cnnkit evaluate" in line)
    assert "no test split" in hint
    command = hint.split("#")[0].split()
    assert command[:3] == ["cnnkit", "evaluate", str(run)] and command[3:] == ["--split", "val"]
    assert main(command[1:] + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "val"

    bare = tmp_path / "bare"
    assert main(["train", "--data", str(folder), "--model", "conv(4,3) relu maxpool(2) fc(2)",
                 "--epochs", "1", "--val-split", "0", "--out", str(bare), "--no-progress"]) == 0
    hint = next(line for line in capsys.readouterr().out.splitlines() if "cnnkit evaluate" in line)
    assert "--data DIR" in hint and "no test or validation split" in hint
