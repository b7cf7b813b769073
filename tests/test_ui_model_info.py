"""ui/model_info.py: what the Model tab says about a model.

Not tested here: the speed measurement on the shipped samples (tests/test_ui_api.py); only
what it does with missing or damaged ones."""
from __future__ import annotations

from PIL import Image

from hwr.recognition.model import Recognizer
from hwr_ui.model_info import MODEL_CARD_FILE, measure_speed, model_card

from helpers import make_untrained_model, render_line


def test_a_model_card_in_another_encoding_still_shows(tmp_path):
    folder = make_untrained_model(tmp_path / "m")
    (folder / MODEL_CARD_FILE).write_bytes("# my hand\n\nCER 5% \u2014 caf\u00e9".encode("cp1252"))
    card = model_card(Recognizer.load(folder, device="cpu"))  # used to raise UnicodeDecodeError
    assert card.startswith("# my hand") and "caf\ufffd" in card


def test_a_damaged_sample_line_is_left_out_of_the_speed_measurement_and_named(tmp_path, monkeypatch):
    samples = tmp_path / "data" / "samples"
    samples.mkdir(parents=True)
    Image.fromarray(render_line("the cat")).save(samples / "line-01.png")
    (samples / "line-02.png").write_bytes(b"not a png")
    monkeypatch.setenv("HWR_DATA_DIR", str(tmp_path / "data"))
    speed = measure_speed(Recognizer.load(make_untrained_model(tmp_path / "m"), device="cpu"), repeats=1)
    assert speed["unreadable_samples"] == ["line-02.png"] and speed["one_line_ms_median"] > 0
