"""``cnnkit data make`` / ``cnnkit data list``: files written, exit codes, no data lost."""
from __future__ import annotations

import json

import pytest

import cnnkit.cli as cli
from cnnkit.data.open_annotated import open_annotated


@pytest.fixture
def run_cli(capsys):
    """Call ``cnnkit.cli.main`` and capture what it prints."""
    def run(*argv):
        code = cli.main(["data", *map(str, argv)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


SMALL = ("--train", 6, "--val", 2, "--test", 2, "--source", "builtin")


def test_make_writes_coco_and_says_how_to_train(run_cli, tmp_path):
    folder = tmp_path / "det"
    code, out, err = run_cli("make", "mnist-detect", folder, "--seed", 3, *SMALL)
    assert code == 0, err
    assert f"wrote mnist-detect (seed 3) to {folder}" in out
    assert "train: 6 images" in out and "val: 2 images" in out and "test: 2 images" in out
    assert "COCO" in out and f"cnnkit train --data {folder}" in out
    assert sorted(p.name for p in folder.iterdir()) == ["test", "train", "val"]
    document = json.loads((folder / "val" / "annotations.json").read_text())
    assert len(document["images"]) == 2
    splits = open_annotated(folder)
    assert splits.task == "detect" and len(splits.train) == 6


def test_make_segment_and_leave_out_a_split(run_cli, tmp_path):
    code, out, _ = run_cli("make", "mnist-segment", tmp_path / "seg", "--train", 4, "--val", 2,
                           "--test", 0, "--source", "builtin")
    assert code == 0 and "test:" not in out and "segmentation folder" in out
    assert (tmp_path / "seg" / "classes.txt").is_file()
    assert len(list((tmp_path / "seg" / "train" / "masks").glob("*.png"))) == 4
    assert not (tmp_path / "seg" / "test").exists()


def test_refuses_a_non_empty_folder_without_overwrite(run_cli, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    code, out, err = run_cli("make", "mnist-localize", folder, *SMALL)
    assert code == 2 and out == ""
    assert "is not empty" in err and "--overwrite" in err
    assert sorted(p.name for p in folder.iterdir()) == ["precious.txt"]
    code, out, err = run_cli("make", "mnist-localize", folder, *SMALL, "--overwrite")
    assert code == 0, err
    assert (folder / "precious.txt").read_text() == "keep me"
    assert (folder / "train" / "labels.csv").is_file()


def test_bad_name_and_source_exit_2(run_cli, tmp_path):
    code, _, err = run_cli("make", "mnist-classify", tmp_path / "x")
    assert code == 2
    assert "mnist-detect" in err and "mnist-localize" in err and "mnist-segment" in err
    assert not (tmp_path / "x").exists()
    code, _, err = run_cli("make", "mnist-detect", tmp_path / "y", "--source", "emnist")
    assert code == 2 and "source must be one of" in err
    code, _, err = run_cli("make", "mnist-detect", tmp_path / "z", "--train", -1)
    assert code == 2 and "sizes['train']" in err
    with pytest.raises(SystemExit) as info:
        cli.main(["data", "make", "mnist-detect"])  # DIR missing: a usage error
    assert info.value.code == 2


def test_list(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "CANVAS", "DIGITS", "FORMAT"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert rows == {"mnist-detect": ["detect", "96x96", "1-5"],
                    "mnist-localize": ["localize", "64x64", "1"],
                    "mnist-segment": ["segment", "96x96", "1-4"]}
    code, out, _ = run_cli("list", "--json")
    entries = json.loads(out)
    assert [e["name"] for e in entries] == ["mnist-detect", "mnist-localize", "mnist-segment"]
    assert entries[2]["canvas"] == [96, 96] and entries[2]["format"] == "segmentation folder"


@pytest.mark.parametrize("argv, words", [
    (["data"], "Generated datasets"), (["data", "make"], "on-disk format"),
    (["data", "list"], "task, canvas"),
])
def test_every_data_command_has_help(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cnnkit {' '.join(argv)}") and words in out
