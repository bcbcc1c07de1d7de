"""The README's command lines run as written: every ``cnnkit`` line of its ```bash blocks.

The lines about the ``runs/lenet-digits`` run and the inspection commands run for real, in a
scratch folder that holds the files they name (``some.png``, ``folder/``, ``imgs/*.jpg``,
``photo.jpg``, ``digit.png``: digits written by the test). The others — long trainings of the
task recipes, fine-tuning a user's own run, ``serve`` (it blocks), multi-node ``torchrun`` —
are parsed by the CLI's own argument parser, so a renamed command or flag fails here too.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit import cli
from cnnkit.data import load_builtin

README = Path(__file__).resolve().parents[2] / "README.md"
BASH = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _command_lines() -> list[str]:
    """Every ``cnnkit ...`` command of the bash blocks, comments cut, ``&&`` chains split."""
    lines = []
    for block in BASH:
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            lines.extend(part.strip() for part in line.split("&&")
                         if part.strip().startswith("cnnkit "))
    return lines


LINES = _command_lines()
RUNS_FOR_REAL = [line for line in LINES
                 if ("runs/lenet-digits" in line or line.startswith(("cnnkit show kernel",
                                                                     "cnnkit show conv-matrix",
                                                                     "cnnkit lr-find")))
                 and not line.startswith("cnnkit serve")]
PARSED_ONLY = [line for line in LINES if line not in RUNS_FOR_REAL]


def _argv(line: str) -> list[str]:
    return shlex.split(line)[1:]  # drop "cnnkit"


def test_the_readme_shows_commands_of_both_kinds():
    assert len(RUNS_FOR_REAL) >= 12 and len(PARSED_ONLY) >= 5
    assert RUNS_FOR_REAL[0].startswith("cnnkit train --data digits")  # the run comes first


@pytest.mark.parametrize("line", PARSED_ONLY)
def test_readme_command_parses(line):
    args = cli.build_parser().parse_args(_argv(line))
    assert callable(args.func)


def _write_images(folder: Path) -> None:
    digits = load_builtin("digits").test.images[:4]  # uint8 (4, 1, 8, 8)
    pictures = [Image.fromarray(d[0].numpy()).resize((28, 28)) for d in digits]
    pictures[0].save(folder / "some.png")
    pictures[1].save(folder / "digit.png")
    pictures[2].convert("RGB").save(folder / "photo.jpg")
    (folder / "folder").mkdir()
    pictures[3].save(folder / "folder" / "three.png")
    (folder / "imgs").mkdir()
    pictures[0].convert("RGB").save(folder / "imgs" / "a.jpg")


def test_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_images(tmp_path)
    for line in RUNS_FOR_REAL:
        code = cli.main(_argv(line))
        out, err = capsys.readouterr()
        assert code == 0, f"{line}\n-> exit {code}\n{err[-2000:]}"
    run = tmp_path / "runs" / "lenet-digits"
    assert (run / "model.onnx").is_file()  # cnnkit export
    for name in ("sobel.png", "matrix.png", "filters.png", "maps.png", "rf.png", "cam.png",
                 "mistakes.png", "curves.png"):
        with Image.open(tmp_path / name) as picture:  # every picture is a real PNG
            assert picture.format == "PNG" and min(picture.size) > 50, name
    assert np.asarray(Image.open(tmp_path / "rf.png")).std() > 0
    assert (run / "report.html").is_file()  # cnnkit report
