"""``cnnkit summary`` and ``cnnkit models``: output, JSON, exit codes, help text."""
from __future__ import annotations

import json
import re

import pytest

from cnnkit.cli import build_parser, main


def test_models_lists_names_sizes_and_descriptions(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("lenet5 "))
    assert "32x32" in line and "LeNet-5" in line


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["vgg16"]["default_input_size"] == [224, 224]


def test_summary_of_a_registry_model(capsys):
    assert main(["summary", "lenet5", "--input", "32x32x1", "--num-classes", "7"]) == 0
    out = capsys.readouterr().out
    assert "28x28x6" in out and "5x5x16" in out  # conv 5x5 on 32: (32 − 5)/1 + 1 = 28
    assert "16x16" in out and "Total params:" in out
    assert main(["summary", "lenet5", "--input", "32x32x1", "--num-classes", "7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][-1]["output_shape"] == [7]


def test_summary_json_of_a_spec_string(capsys):
    assert main(["summary", "conv(32,3) relu maxpool(2) fc(10)", "--input", "28x28x1",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["output"] == "26x26x32"
    assert data["rows"][0]["receptive_field"] == [3, 3]
    assert data["total_params"] == 32 * 10 + 13 * 13 * 32 * 10 + 10


def test_summary_depth(capsys):
    assert main(["summary", "resnet18", "--input", "32x32x1", "--depth", "1"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "layer1" in names and "layer1.0.conv1" not in names


@pytest.mark.parametrize(("argv", "message"), [
    (["summary", "lenet5", "--input", "32by32"], "--input must look like HxWxC"),
    (["summary", "resnet1"], "'resnet1' is not a registered model name"),
    (["summary", "conv(32,3) blah", "--input", "28x28x1"],
     "neither a registered model name .* nor a valid architecture spec"),
    (["summary", "lenet5", "--num-classes", "0"], "--num-classes must be >= 1"),
])
def test_bad_input_is_a_clean_error(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error:") and "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize("command", ["summary", "models"])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: cnnkit {command}" in out and "--json" in out
    top = build_parser().format_help()
    assert command in top
