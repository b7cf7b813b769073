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
