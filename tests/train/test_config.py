import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.train.config import TrainConfig


def test_defaults_round_trip_through_dict_json_and_yaml(tmp_path):
    cfg = TrainConfig(epochs=3, lr=0.01, optimizer="sgd", nesterov=True, ema=0.99)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    for name in ("c.json", "c.yaml"):
        cfg.to_file(tmp_path / name)
        assert TrainConfig.from_file(tmp_path / name) == cfg
    assert json.loads((tmp_path / "c.json").read_text())["optimizer"] == "sgd"


@settings(max_examples=30, deadline=None)
@given(epochs=st.integers(1, 500), lr=st.floats(1e-6, 10.0), batch_size=st.integers(1, 4096),
       smoothing=st.floats(0.0, 0.99), clip=st.one_of(st.none(), st.floats(0.01, 100.0)))
def test_configs_survive_json(epochs, lr, batch_size, smoothing, clip):
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, label_smoothing=smoothing,
                      grad_clip=clip)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ValueError, match=r"unknown training setting 'epoch'; did you mean "
                                         r"'epochs'\?.*valid settings: data, task, head, image_root, data_dir"):
        TrainConfig.from_dict({"epoch": 3})


def test_yaml_file_with_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown training setting 'learning_rate'"):
        TrainConfig.from_file(path)


@pytest.mark.parametrize("changes, message", [
    ({"lr": 0.0}, r"lr must be > 0, got 0.0"),
    ({"optimizer": "adamm"}, r"optimizer must be one of .*got 'adamm'; did you mean 'adam'\?"),
    ({"batch_size": 0}, r"batch_size must be >= 1, got 0"),
    ({"epochs": 2.5}, r"epochs must be a positive int, got 2.5"),
    ({"nesterov": True, "momentum": 0.0}, r"nesterov=True needs momentum > 0"),
    ({"precision": "fp8"}, r"precision must be one of fp32, bf16, fp16, auto; got 'fp8'"),
    ({"val_split": 1.0}, r"val_split must be in \[0, 1\), got 1.0"),
    ({"warmup_epochs": 5, "epochs": 2}, r"warmup_epochs must be <= epochs \(2\), got 5"),
    ({"grad_clip": 0.0}, r"grad_clip must be > 0 or None"),
])
def test_bad_values_are_rejected_with_the_argument_and_value(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TrainConfig(**changes)


def test_from_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "missing.yaml")
    (tmp_path / "c.toml").write_text("epochs = 2")
    with pytest.raises(ValueError, match=r"must end in \.json, \.yaml or \.yml"):
        TrainConfig.from_file(tmp_path / "c.toml")
    (tmp_path / "bad.json").write_text("{epochs: 2")
    with pytest.raises(ValueError, match="is not valid JSON"):
        TrainConfig.from_file(tmp_path / "bad.json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(TypeError, match="must be a mapping of settings"):
        TrainConfig.from_file(tmp_path / "list.yaml")


def test_every_setting_is_documented_for_the_cli_help():
    docs = TrainConfig.field_docs()
    assert set(docs) == set(TrainConfig.field_names())
    assert all(len(text) > 10 for text in docs.values())
    assert docs["lr"].startswith("peak learning rate")


def test_one_cycle_is_the_same_schedule_as_onecycle():
    assert TrainConfig(schedule="one-cycle").schedule == "onecycle"
    assert TrainConfig(schedule="one-cycle") == TrainConfig(schedule="onecycle")
