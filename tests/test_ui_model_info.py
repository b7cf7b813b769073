"""ui/model_info.py: what the Model tab says about a model.

Not tested here: the speed measurement (it needs the shipped samples; tests/test_ui_api.py)."""
from __future__ import annotations

from hwr.recognition.model import Recognizer
from hwr_ui.model_info import MODEL_CARD_FILE, model_card

from helpers import make_untrained_model


def test_a_model_card_in_another_encoding_still_shows(tmp_path):
    folder = make_untrained_model(tmp_path / "m")
    (folder / MODEL_CARD_FILE).write_bytes("# my hand\n\nCER 5% \u2014 caf\u00e9".encode("cp1252"))
    card = model_card(Recognizer.load(folder, device="cpu"))  # used to raise UnicodeDecodeError
    assert card.startswith("# my hand") and "caf\ufffd" in card
