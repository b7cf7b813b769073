"""hwr.training.averaging: the mean of several snapshots, and the `hwr average` command."""
import json

import pytest
import torch

from hwr.cli import main
from hwr.errors import ConfigError
from hwr.recognition.model import ModelConfig, ModelError, load_model, save_model
from hwr.training.averaging import average_models

from helpers import make_untrained_model


def test_the_average_is_the_mean_of_every_weight(tmp_path):
    dirs = [make_untrained_model(tmp_path / f"m{seed}", seed=seed) for seed in range(3)]
    net, config = average_models(dirs)
    states = [load_model(d)[0].state_dict() for d in dirs]
    for name, tensor in net.state_dict().items():
        if tensor.is_floating_point():
            expected = sum(s[name].double() for s in states) / 3
            torch.testing.assert_close(tensor.double(), expected, rtol=0, atol=1e-7)
    assert config.training["averaged_from"] == [str(d) for d in dirs]


def test_different_networks_do_not_average(tmp_path):
    first = make_untrained_model(tmp_path / "a")
    net, config = load_model(first)
    wider_margin = {**json.loads(config.to_json()), "normalize": {**config.normalize, "margin": 0.3}}
    other = save_model(tmp_path / "b", net, ModelConfig.from_dict(wider_margin))
    with pytest.raises(ModelError, match=f"{other}: not the same network"):
        average_models([first, other])
    with pytest.raises(ValueError, match="at least two"):
        average_models([first])


def test_a_model_saved_before_a_normalisation_setting_averages_with_one_that_spells_it_out(tmp_path):
    first = make_untrained_model(tmp_path / "a", seed=1)
    net, config = load_model(first)
    legacy = json.loads(config.to_json())
    legacy["normalize"] = {k: v for k, v in legacy["normalize"].items() if k != "flatten_background"}
    spelled_out = {**legacy, "normalize": {**legacy["normalize"], "flatten_background": False}}
    a = save_model(tmp_path / "legacy", net, ModelConfig.from_dict(legacy))
    b = save_model(tmp_path / "spelled", net, ModelConfig.from_dict(spelled_out))
    average_models([a, b])
    with pytest.raises(ModelError, match="not the same network"):
        average_models([a, first])  # flattened and not: they read lines differently


def test_average_command_writes_a_loadable_model(tmp_path, capsys):
    dirs = [str(make_untrained_model(tmp_path / f"m{seed}", seed=seed)) for seed in range(2)]
    assert main(["average", *dirs, "--out", str(tmp_path / "avg"), "--half"]) == 0
    net, config = load_model(tmp_path / "avg")
    assert config.training["averaged_from"] == dirs
    assert "the mean of 2 models" in capsys.readouterr().out
    assert main(["average", dirs[0], str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "missing: model directory not found" in capsys.readouterr().err


def test_a_model_named_twice_is_refused_not_counted_double(tmp_path):
    first, second = (make_untrained_model(tmp_path / f"m{seed}", seed=seed) for seed in range(2))
    with pytest.raises(ConfigError, match="given twice"):
        average_models([first, second, tmp_path / "m0" / "."])
