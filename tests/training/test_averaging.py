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


def test_the_best_model_of_a_training_still_running_is_not_replaced(tmp_path, capsys):
    """`hwr average --out run/best --overwrite` had replaced the best model of a training still
    running into run/ (a probe helper); the training's hold on run/ refuses it now."""
    import fcntl
    import os

    dirs = [str(make_untrained_model(tmp_path / f"m{seed}", seed=seed)) for seed in range(2)]
    run = tmp_path / "run"
    best = make_untrained_model(run / "best", seed=5)
    before = (best / "model.safetensors").read_bytes()
    training = os.open(run, os.O_RDONLY)  # as another process's folder_held holds it
    try:
        fcntl.flock(training, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["average", *dirs, "--out", str(best), "--overwrite"]) == 2
        assert f"is best/ of {run}, which a training running there now replaces" in capsys.readouterr().err
        assert (best / "model.safetensors").read_bytes() == before
        assert main(["average", *dirs, "--out", str(run), "--overwrite"]) == 2
        assert "another hwr run is using this folder" in capsys.readouterr().err
        # Beside what the training writes (a transcription's output folder too): no reason to refuse.
        assert main(["average", *dirs, "--out", str(run / "averaged")]) == 0, capsys.readouterr().err
    finally:
        os.close(training)
    assert main(["average", *dirs, "--out", str(best), "--overwrite"]) == 0  # the training done


def test_overwrite_replaces_the_whole_model_folder_and_never_files_that_are_no_models(tmp_path, capsys):
    """An adapted pair's `beside/`, card and history outlived the mean written over it: the
    mean was then refused as no network like its beside/, or read beside a stale base model."""
    dirs = [str(make_untrained_model(tmp_path / f"m{seed}", seed=seed)) for seed in range(2)]
    out = tmp_path / "adapted"
    make_untrained_model(out, seed=5)
    make_untrained_model(out / "beside", seed=6)
    (out / "MODEL_CARD.md").write_text("# adapted")
    (out / "adapt-history.jsonl").write_text("{}\n")
    assert main(["average", *dirs, "--out", str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert load_model(out)[1].training["averaged_from"] == dirs
    assert not list(tmp_path.glob(".adapted.*"))  # no staging or set-aside folder left
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    assert main(["average", *dirs, "--out", str(notes), "--overwrite"]) == 2
    assert "holds files that are not a model's (notes.txt)" in capsys.readouterr().err
    assert (notes / "notes.txt").read_text() == "mine"


def test_overwrite_keeps_hidden_files_a_link_and_the_current_folder(tmp_path, monkeypatch, capsys):
    """Review: a model kept under git lost its .git to the swap; a linked --out became a folder
    (and the next run a traceback); "--out ." had no name to swap in."""
    import os

    dirs = [str(make_untrained_model(tmp_path / f"m{seed}", seed=seed)) for seed in range(2)]
    tracked = make_untrained_model(tmp_path / "tracked")
    (tracked / ".git").mkdir()
    assert main(["average", *dirs, "--out", str(tracked), "--overwrite"]) == 2
    assert "holds files that are not a model's (.git)" in capsys.readouterr().err and (tracked / ".git").is_dir()
    target = make_untrained_model(tmp_path / "target")
    os.symlink(target, tmp_path / "link")
    for _ in range(2):
        assert main(["average", *dirs, "--out", str(tmp_path / "link"), "--overwrite"]) == 0, capsys.readouterr().err
        assert (tmp_path / "link").is_symlink() and load_model(target)[1].training["averaged_from"] == dirs
    monkeypatch.chdir(target)
    assert main(["average", *dirs, "--out", ".", "--overwrite"]) == 2
    assert "--out .: is the current folder or holds it" in capsys.readouterr().err


def test_models_are_named_as_every_model_option_names_them(tmp_path, monkeypatch, capsys):
    import hwr.recognition.model as model_module

    for seed, name in enumerate(("tiny-a", "tiny-b")):
        make_untrained_model(tmp_path / "shipped" / name, seed=seed)
    monkeypatch.setattr(model_module, "models_dir", lambda: tmp_path / "shipped")
    assert main(["average", "tiny-a", "tiny-b", "--out", str(tmp_path / "avg")]) == 0, capsys.readouterr().err
    assert load_model(tmp_path / "avg")[1].training["averaged_from"] == [str(tmp_path / "shipped" / n)
                                                                          for n in ("tiny-a", "tiny-b")]


def test_a_setting_the_network_ignores_does_not_make_another_network(tmp_path):
    first = make_untrained_model(tmp_path / "a", seed=1)
    net, config = load_model(first)
    edited = json.loads(config.to_json())
    edited["net"]["a_setting_of_an_older_version"] = 3
    other = save_model(tmp_path / "edited", net, ModelConfig.from_dict(edited))
    average_models([first, other])


def test_a_model_named_twice_is_refused_not_counted_double(tmp_path):
    first, second = (make_untrained_model(tmp_path / f"m{seed}", seed=seed) for seed in range(2))
    with pytest.raises(ConfigError, match="given twice"):
        average_models([first, second, tmp_path / "m0" / "."])


def test_models_of_different_training_runs_average_with_a_warning(tmp_path, caplog):
    """Snapshots of one run, or stages fine-tuned from one model, average; two runs trained apart
    have unaligned units: said, not refused."""
    dirs = []
    for name, out in (("a", "runs/one"), ("b", "runs/one"), ("c", "runs/other")):
        net, config = load_model(make_untrained_model(tmp_path / f"raw-{name}", seed=len(dirs)))
        training = {"config": {"out": out, "seed": 1}}
        dirs.append(save_model(tmp_path / name, net, ModelConfig.from_dict({**json.loads(config.to_json()),
                                                                            "training": training})))
    with caplog.at_level("WARNING", logger="hwr.training.averaging"):
        average_models(dirs[:2])
        assert not caplog.records
        average_models(dirs)
    assert "comes from another training run" in caplog.text and "runs/other" in caplog.text


def test_an_adapted_model_averages_with_its_base_saying_only_that_beside_is_left_out(tmp_path, caplog):
    """An adapted model and its own base had been warned of as "another training run" (they are
    one lineage), and the adapted model's beside/ was left out of the mean without a word (a probe
    helper)."""
    base = make_untrained_model(tmp_path / "base", seed=0)
    net, config = load_model(make_untrained_model(tmp_path / "raw", seed=1))
    training = {"config": {"out": "adapt-run", "seed": 1, "init_from": str(base)}}
    adapted = save_model(tmp_path / "adapted", net, ModelConfig.from_dict({**json.loads(config.to_json()),
                                                                          "training": training}))
    make_untrained_model(adapted / "beside", seed=0)
    with caplog.at_level("WARNING", logger="hwr.training.averaging"):
        average_models([base, adapted])
    assert "another training run" not in caplog.text
    assert f"{adapted} read doubtful lines beside its base model (beside/); the mean is written without it" in (
        caplog.text)
