"""ui/models.py: the models a UI user may choose. Not tested here: loading (hwr.recognition.model)."""
from __future__ import annotations

import shutil

import pytest

from hwr.recognition.model import ModelError
from hwr_ui.models import ModelRegistry


def test_a_model_whose_folder_was_deleted_gives_a_clear_message_when_picked_and_leaves_the_menu(tmp_path,
                                                                                               untrained_model):
    registry = ModelRegistry(str(untrained_model))
    shutil.copytree(untrained_model, tmp_path / "mine")
    registry.add("mine (adapted)", tmp_path / "mine")
    assert "mine (adapted)" in registry.labels
    shutil.rmtree(tmp_path / "mine")  # deleted from the disk while the server runs
    with pytest.raises(ModelError, match=r"'mine \(adapted\)' is no longer on the server .* choose another"):
        registry.get("mine (adapted)")
    assert "mine (adapted)" not in registry.labels and registry.labels[0] == registry.default_label


def test_the_menu_drops_a_deleted_model_at_the_next_listing(tmp_path, untrained_model):
    registry = ModelRegistry(str(untrained_model))
    shutil.copytree(untrained_model, tmp_path / "mine")
    registry.add("mine (adapted)", tmp_path / "mine")
    shutil.rmtree(tmp_path / "mine")
    assert "mine (adapted)" not in registry.labels
    registry.get(None)  # the model that is still there is read as before


def test_a_model_that_names_no_model_is_refused_not_replaced_by_another(tmp_path, capsys):
    from hwr.cli import main

    for wrong in ("hwr-en-smal", str(tmp_path)):  # a typo; a folder without config.json
        with pytest.raises(ModelError, match="no model folder or model name"):
            ModelRegistry(wrong)
        assert main(["ui", "--model", wrong]) == 2
        captured = capsys.readouterr()
        assert "no model folder or model name" in captured.err and "serving" not in captured.out
    assert ModelRegistry(None).default_label == "hwr-en-small"  # the shipped default comes first


def test_a_model_whose_files_cannot_be_read_is_refused_at_start_or_left_off_the_menu(tmp_path, untrained_model,
                                                                                     monkeypatch, caplog, capsys):
    """The server had started with a config that is no JSON or weights cut short, and failed
    at the first page read; a folder named in Latin-1 had stopped it starting at all."""
    import os

    from hwr.cli import main

    broken = tmp_path / "broken"
    shutil.copytree(untrained_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelError, match="model.safetensors: corrupt or unreadable weights"):
        ModelRegistry(str(broken))
    assert main(["ui", "--model", str(broken)]) == 2
    assert "corrupt or unreadable weights" in capsys.readouterr().err
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    shutil.copytree(broken, shelf / "broken")
    latin1 = shelf / os.fsdecode(b"mod\xe8le")
    shutil.copytree(untrained_model, latin1)
    monkeypatch.setenv("HWR_MODELS_DIR", str(shelf))
    registry = ModelRegistry(str(untrained_model))
    assert registry.labels == [untrained_model.name, "mod\\udce8le"]  # the broken one left off, said why
    assert "broken/model.safetensors: corrupt or unreadable weights" in caplog.text
    assert registry.path("mod\\udce8le") == latin1 and registry.get("mod\\udce8le").recognize([]) == []
