"""hwr.config_args: flags and config files from one dataclass, choices and types checked when parsed.

Not tested here: each command's own settings (their modules' tests do that)."""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import Literal

import pytest

from hwr.config_args import add_dataclass_arguments, build_config, check_at_least, read_config_file, setting
from hwr.errors import ConfigError


@dataclass
class Demo:
    schedule: Literal["cosine", "plateau"] = setting("cosine", help="how the LR falls at 95% done")
    steps: int = setting(10, help="how many steps")
    rate: float = setting(0.1, help="a rate")
    cell: Literal["lstm", "gru"] | None = setting(None, help="a cell")
    fast: bool = setting(False, help="go fast")
    options: dict | None = setting(None, help="anything else")
    factors: list[float] = setting(default_factory=lambda: [1.3], help="factors")
    report: str | None = setting(None, help="write a report here")


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


def test_a_list_flag_given_no_values_before_the_inputs_says_how_to_give_it(capsys):
    parser = _parser()
    parser.add_argument("inputs", nargs="+")
    with pytest.raises(SystemExit):
        parser.parse_args(["--factors", "page.png"])
    assert ("argument --factors: 'page.png' is no float: --factors takes the words after it as its values; "
            "give it after the inputs, or end its values with --") in capsys.readouterr().err
    assert vars(parser.parse_args(["--factors", "--", "page.png"]))["factors"] == []
    assert vars(parser.parse_args(["page.png", "--factors"]))["factors"] == []
    assert vars(parser.parse_args(["--factors", "1.5", "2", "--", "page.png"]))["factors"] == [1.5, 2.0]


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


def _help(capsys, *command) -> str:
    from hwr.cli import main

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return "".join(capsys.readouterr().out.split())  # argparse wraps lines, at hyphens too


@pytest.mark.parametrize("command,config_class", [
    (("synth",), "hwr.synth.export:SynthExportConfig"),
    (("lm", "build"), "hwr.recognition.lm:LMBuildConfig"),
    (("average",), "hwr.training.settings:AverageConfig"),
    (("train",), "hwr.training.settings:TrainConfig"),
    (("adapt",), "hwr.training.settings:AdaptConfig"),
    (("ui",), "hwr.ui_cli:UIConfig"),
])
def test_each_commands_flags_and_help_come_from_its_dataclass(capsys, command, config_class):
    import dataclasses
    import importlib

    module, name = config_class.split(":")
    cls = getattr(importlib.import_module(module), name)
    text = _help(capsys, *command)
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:  # inherited recognizer settings take theirs from the decoder's table
            assert f"--{f.name.replace('_', '-')}" in text and "".join(f.metadata["help"].split()) in text


def test_a_required_setting_missing_from_flags_and_file_is_named(tmp_path, capsys):
    from hwr.cli import main

    assert main(["synth", "--n", "1"]) == 2
    assert "missing required settings: --out" in capsys.readouterr().err
    config = _config_file(tmp_path, out=str(tmp_path / "x"), format="iamm")
    assert main(["synth", "--config", config]) == 2
    assert "format: expected 'iam' | 'pairs', got 'iamm'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_lm_build_reads_its_settings_from_a_config_file(tmp_path, capsys):
    from hwr.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\nthe dog ran\n")
    config = _config_file(tmp_path, out=str(tmp_path / "lm.arpa"), order=2, unit="word", min_counts="1,1")
    assert main(["lm", "build", str(corpus), "--config", config]) == 0
    assert "\\2-grams:" in (tmp_path / "lm.arpa").read_text()
    assert main(["lm", "build", str(corpus), "--config", config, "--min-counts", "1,x"]) == 2
    assert "--min-counts: expected comma-separated integers" in capsys.readouterr().err


def test_every_shipped_training_config_passes_the_checks():
    """configs/*.json are read through the same types as the flags: none may hold a typo."""
    from hwr.cli import build_parser
    from hwr.training.train import TrainConfig

    from helpers import REPO

    args = build_parser().parse_args(["train"])
    configs = sorted((REPO / "configs").glob("*.json"))
    assert configs
    for path in configs:
        assert isinstance(build_config(TrainConfig, args, str(path)), TrainConfig), path


def test_a_config_file_that_cannot_be_read_is_a_config_error_naming_it(tmp_path):
    from hwr.config_args import read_config_file
    from hwr.errors import ConfigError

    with pytest.raises(ConfigError, match=r"missing\.json: cannot read"):
        read_config_file(str(tmp_path / "missing.json"))
    (tmp_path / "latin1.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match=r"latin1\.json: config file is not UTF-8 \(line 1, byte 0x"):
        read_config_file(str(tmp_path / "latin1.json"))


@dataclass
class Checked:
    workers: int = setting(2, help="page workers")
    workers_max: int = setting(4, help="most page workers")

    def __post_init__(self):
        check_at_least(self, 0, "workers", "workers_max")


def test_a_range_check_on_a_config_file_value_names_the_file_and_key(tmp_path):
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, Checked)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"workers_max": -1}))
    with pytest.raises(ConfigError, match=rf"^--workers-max must be at least 0, got -1 \(set by 'workers_max' in "
                                          rf"{re.escape(str(path))}\)$"):
        build_config(Checked, parser.parse_args([]), str(path))
    # A flag overrides the file: then the flag is at fault, as the message already says.
    path.write_text(json.dumps({"workers": 1}))
    with pytest.raises(ConfigError, match=r"^--workers must be at least 0, got -3$"):
        build_config(Checked, parser.parse_args(["--workers", "-3"]), str(path))


def test_a_yaml_syntax_error_is_one_line_naming_the_file(tmp_path):
    pytest.importorskip("yaml")
    from hwr.config_args import read_config_file

    path = tmp_path / "settings.yaml"
    path.write_text("steps: [\n")
    with pytest.raises(ConfigError, match=r"settings\.yaml: invalid YAML config") as error:
        read_config_file(str(path))
    assert "\n" not in str(error.value)


def test_a_toml_config_is_read_and_its_syntax_error_names_the_file(tmp_path):
    pytest.importorskip("tomllib")
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, Checked)
    path = tmp_path / "settings.toml"
    path.write_text("workers = 3  # a comment\n")
    assert build_config(Checked, parser.parse_args([]), str(path)).workers == 3
    path.write_text("workers = \n")
    with pytest.raises(ConfigError, match=r"settings\.toml: invalid TOML config \(Invalid value"):
        build_config(Checked, parser.parse_args([]), str(path))


def test_config_files_nested_too_deeply_or_with_names_that_are_no_text_are_named(tmp_path):
    """Both were tracebacks: a RecursionError from the parser, a TypeError sorting 1 among names."""
    from hwr.config_args import read_config_file

    from bad_inputs import deeply_nested_json, deeply_nested_yaml

    with pytest.raises(ConfigError, match=r"deep\.json: invalid JSON config \(nested too deeply\)"):
        read_config_file(str(deeply_nested_json(tmp_path / "deep.json")))
    pytest.importorskip("yaml")
    with pytest.raises(ConfigError, match=r"deep\.yaml: invalid YAML config \(nested too deeply\)"):
        read_config_file(str(deeply_nested_yaml(tmp_path / "deep.yaml")))
    (tmp_path / "keys.yaml").write_text("1: 2\nnull: 3\nsteps: 4\n")
    with pytest.raises(ConfigError, match=r"keys\.yaml: setting names must be text, got 1, None$"):
        build_config(Demo, _parser().parse_args([]), str(tmp_path / "keys.yaml"))


def test_a_yaml_number_in_exponent_form_is_a_float(tmp_path):
    """YAML 1.1 wants a dot (1.0e-4), so PyYAML read `lr: 1e-4` as a string and refused it."""
    pytest.importorskip("yaml")
    from hwr.config_args import read_config_file

    path = tmp_path / "stage.yaml"
    path.write_text("lr: 1e-4\nweight_decay: -2E+1\nsteps: 100\nname: 1e5x\n", encoding="utf-8")
    assert read_config_file(str(path)) == {"lr": 1e-4, "weight_decay": -20.0, "steps": 100, "name": "1e5x"}


def test_config_file_suffixes_are_read_whatever_their_case(tmp_path):
    pytest.importorskip("yaml")
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, Checked)
    path = tmp_path / "settings.YAML"  # had been read as JSON: "invalid JSON config"
    path.write_text("workers: 3\n")
    assert build_config(Checked, parser.parse_args([]), str(path)).workers == 3


@pytest.mark.parametrize("name, text", [("s.json", '{"workers": 3}'), ("s.toml", "workers = 3\n"),
                                        ("s.yaml", "workers: 3\n")])
def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path, name, text):
    """JSON and TOML with Notepad's BOM were refused ("Unexpected UTF-8 BOM"); YAML was read."""
    pytest.importorskip("tomllib")
    pytest.importorskip("yaml")
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, Checked)
    (tmp_path / name).write_bytes("\ufeff".encode() + text.encode())
    assert build_config(Checked, parser.parse_args([]), str(tmp_path / name)).workers == 3


def test_a_number_too_large_for_a_float_setting_is_a_config_error(tmp_path):
    from hwr.training.train import TrainConfig

    path = tmp_path / "big.json"
    path.write_text('{"max_minutes": 1' + "0" * 400 + "}")
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, TrainConfig)
    with pytest.raises(ConfigError, match=r"max_minutes: 1000.* is too large a number"):  # OverflowError, traceback
        build_config(TrainConfig, parser.parse_args([]), str(path))


@pytest.mark.parametrize("values, says", [({"mode": "pages"}, "--mode must be one of"),
                                          ({"resume": True}, "--resume needs --output-dir"),
                                          ({"format": "docx"}, "--format: ")])
def test_transcribe_settings_from_a_config_file_are_named_as_the_files(tmp_path, capsys, values, says):
    """These checks ran after the file was read, and named only a flag the user never typed."""
    from hwr.cli import main

    config = _config_file(tmp_path, **values)
    assert main(["transcribe", str(tmp_path / "x.png"), "--config", config]) == 2
    err = capsys.readouterr().err
    assert says in err and f"in {config})" in err, err


@pytest.mark.parametrize("name, text, kind", [
    ("twice.json", '{"workers": 1, "workers": 3}', "JSON"),  # json kept the last, in silence
    ("twice.yaml", "workers: 1\nlr: 0.1\nworkers: 3\n", "YAML"),  # and so did PyYAML
])
def test_a_setting_given_twice_in_a_config_file_is_refused(tmp_path, name, text, kind):
    path = tmp_path / name
    path.write_text(text)
    parser = argparse.ArgumentParser(prog="demo")
    add_dataclass_arguments(parser, Checked)
    says = rf"{name.replace('.', '[.]')}: invalid {kind} config \(.*the key 'workers' is given twice"
    with pytest.raises(ConfigError, match=says):
        build_config(Checked, parser.parse_args([]), str(path))


def test_a_yaml_key_merged_from_an_anchor_may_be_overridden(tmp_path):
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &base {workers: 1}\nrun:\n  <<: *base\n  workers: 3\n")
    assert read_config_file(str(merged))["run"] == {"workers": 3}
    # An anchored mapping merged (and so flattened) before its own turn: its merged keys are not its own.
    nested = tmp_path / "nested.yaml"
    nested.write_text("d: &d {lr: 1}\ngroup:\n  base: &a {<<: *d, lr: 2}\nrun: {<<: *a}\n")
    assert read_config_file(str(nested))["run"] == {"lr": 2}


def test_a_json_flag_that_is_not_json_says_so(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--options", "{bad"])
    assert "invalid JSON value: '{bad'" in capsys.readouterr().err


def test_an_empty_name_is_refused_not_taken_as_unset(tmp_path):
    """`--json "$REPORT"` with the variable unset had run without writing the report, silently."""
    with pytest.raises(ConfigError, match="--report is empty; give a name, or leave the flag out"):
        build_config(Demo, _parser().parse_args(["--report", ""]))
    with pytest.raises(ConfigError, match="settings.json: report: empty; give a name, or leave it out"):
        build_config(Demo, _parser().parse_args([]), _config_file(tmp_path, report=""))
    assert build_config(Demo, _parser().parse_args(["--report", "r.json"])).report == "r.json"
