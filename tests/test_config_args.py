"""hwr.config_args: flags and config files from one dataclass, choices and types checked when parsed.

Not tested here: each command's own settings (their modules' tests do that)."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Literal

import pytest

from hwr.config_args import add_dataclass_arguments, build_config, setting
from hwr.errors import ConfigError


@dataclass
class Demo:
    schedule: Literal["cosine", "plateau"] = setting("cosine", help="how the LR falls at 95% done")
    steps: int = setting(10, help="how many steps")
    rate: float = setting(0.1, help="a rate")
    cell: Literal["lstm", "gru"] | None = setting(None, help="a cell")
    fast: bool = setting(False, help="go fast")
    options: dict | None = setting(None, help="anything else")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, Demo)
    return parser


def _config_file(tmp_path, **values) -> str:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(values))
    return str(path)


def test_a_literal_field_becomes_argparse_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["--schedule", "cosin"])
    assert exit_.value.code == 2 and "invalid choice: 'cosin'" in capsys.readouterr().err
    assert _parser().parse_args(["--cell", "gru"]).cell == "gru"


def test_help_comes_from_the_field_with_its_default():
    text = _parser().format_help()
    assert "how the LR falls at 95% done (default: cosine)" in " ".join(text.split())
    assert "{cosine,plateau}" in text


@pytest.mark.parametrize("key,value,expected", [
    ("schedule", "cosin", "'cosine' | 'plateau'"), ("steps", "10", "int"), ("steps", 2.5, "int"),
    ("steps", True, "int"), ("rate", "fast", "float"), ("fast", "yes", "bool"), ("cell", "GRU", "or null"),
    ("options", [1], "dict"),
])
def test_a_config_file_value_of_the_wrong_type_or_choice_names_file_and_key(tmp_path, key, value, expected):
    path = _config_file(tmp_path, **{key: value})
    with pytest.raises(ConfigError) as error:
        build_config(Demo, _parser().parse_args([]), path)
    assert str(error.value).startswith(f"{path}: {key}: expected") and expected in str(error.value)


def test_config_file_values_of_the_right_type_are_taken_and_flags_override_them(tmp_path):
    path = _config_file(tmp_path, schedule="plateau", steps=5, rate=1, cell=None, options={"a": 1})
    config = build_config(Demo, _parser().parse_args(["--steps", "7"]), path)
    assert config == Demo(schedule="plateau", steps=7, rate=1.0, cell=None, options={"a": 1})
    assert isinstance(config.rate, float)


def test_unknown_keys_and_broken_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown settings \\['stpes'\\]"):
        build_config(Demo, _parser().parse_args([]), _config_file(tmp_path, stpes=3))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="broken.json: invalid JSON"):
        build_config(Demo, _parser().parse_args([]), str(broken))


def test_hwr_train_rejects_a_bad_optimizer_before_opening_any_data(tmp_path, capsys):
    from hwr.cli import main

    config = _config_file(tmp_path, optimizer="sgd", train=str(tmp_path / "missing"))
    assert main(["train", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "optimizer: expected 'adam' | 'adamw' | 'rmsprop', got 'sgd'" in err and "missing" not in err
    with pytest.raises(SystemExit):
        main(["train", "--optimizer", "sgd", "--train", str(tmp_path / "missing")])
    assert "invalid choice: 'sgd'" in capsys.readouterr().err


def test_every_training_setting_has_help():
    import dataclasses

    from hwr.training.train import TrainConfig

    missing = [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("help")]
    assert missing == []
