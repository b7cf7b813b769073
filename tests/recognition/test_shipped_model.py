"""The default model shipped in models/: present, loadable by default, and actually reading.

The accuracy check renders lines in the held-out validation fonts from held-out corpus text
(text kinds and augmentation of the synthetic engine's validation split) and requires a CER
that a missing, broken or untrained model cannot reach.
"""
import os
import runpy
import shutil
from pathlib import Path

import pytest

from hwr.datasets.synthetic import SyntheticLines
from hwr.recognition.model import DEFAULT_MODEL_NAME, ModelError, Recognizer, default_model_dir
from hwr.scoring.metrics import ErrorCounts

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / DEFAULT_MODEL_NAME
# The loose bound: the shipped model reads these 24 lines at CER 0.025, an untrained or
# broken one at ~1.0.
MAX_CER = 0.10


def test_default_model_is_the_shipped_one(monkeypatch):
    monkeypatch.delenv("HWR_MODEL", raising=False)
    assert default_model_dir() == SHIPPED
    for name in ("model.safetensors", "config.json", "MODEL_CARD.md"):
        assert (SHIPPED / name).is_file(), name
    assert (SHIPPED / "model.safetensors").stat().st_size <= 15 * 2**20


def test_shipped_model_reads_unseen_validation_font_lines(monkeypatch):
    monkeypatch.delenv("HWR_MODEL", raising=False)
    counts = _validation_font_errors(Recognizer.load(device="cpu"), 24)
    assert counts.cer < MAX_CER, f"CER {counts.cer:.3f} on {counts.lines} validation-font lines"


def test_images_without_ink_read_as_empty_text(monkeypatch):
    import numpy as np

    monkeypatch.delenv("HWR_MODEL", raising=False)
    blank = [np.full((48, 400), 255, np.uint8), np.zeros((48, 400), np.uint8), np.zeros((5, 5), np.uint8),
             np.full((30, 300), 140, np.uint8)]  # (fewer than 5 rows are refused: MIN_LINE_ROWS)
    assert [r.text for r in Recognizer.load(device="cpu").recognize(blank)] == ["", "", "", ""]


def test_light_ink_on_dark_reads_as_the_same_line_in_dark_ink(monkeypatch):
    """Chalk on a blackboard, a microfilm negative: inverted, the lines read as they do in dark
    ink; read as given, the ground had been one long stroke."""
    monkeypatch.delenv("HWR_MODEL", raising=False)
    from helpers import render_line

    images = [render_line(text) for text in ("the negative film", "Chalk on the board", "written 1926")]
    recognizer = Recognizer.load(device="cpu")
    dark_ink = [r.text for r in recognizer.recognize(images)]
    assert [r.text for r in recognizer.recognize([255 - image for image in images])] == dark_ink


def _validation_font_errors(recognizer: Recognizer, n: int) -> ErrorCounts:
    lines = SyntheticLines(n, split="val", seed=2024, kinds=("corpus", "words"))
    counts = ErrorCounts()
    samples = [lines[i] for i in range(len(lines))]
    for sample, rec in zip(samples, recognizer.recognize([s.image for s in samples])):
        counts.add(sample.text, rec.text)
    return counts


@pytest.mark.parametrize("name", ["hwr-en-base"])
def test_every_other_shipped_model_reads_by_name_and_has_a_card(name, tmp_path, monkeypatch):
    """Models beside the default are chosen by name (`--model hwr-en-base`), from any folder."""
    monkeypatch.chdir(tmp_path)
    recognizer = Recognizer.load(name, device="cpu")
    assert recognizer.path == REPO / "models" / name
    assert (recognizer.path / "MODEL_CARD.md").is_file()
    assert (recognizer.path / "model.safetensors").stat().st_size <= 40 * 2**20  # issue 19's bound
    counts = _validation_font_errors(recognizer, 12)
    assert counts.cer < MAX_CER, f"CER {counts.cer:.3f} on {counts.lines} validation-font lines"


def test_a_name_that_is_no_model_is_an_error_naming_the_models_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="hwr-en-huge: model directory not found \\(nor a model name in"):
        Recognizer.load("hwr-en-huge")


def test_missing_or_corrupt_weights_fail_clearly(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED, copy)
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(ModelError, match="model.safetensors: corrupt"):
        Recognizer.load(copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="weights file not found"):
        Recognizer.load(copy)


def test_a_regular_install_carries_the_model(monkeypatch):
    """`pip install .` copies models/ to <prefix>/share/hwr (setup.py data_files)."""
    monkeypatch.chdir(REPO)
    data_files = dict(runpy.run_path(str(REPO / "setup.py"), run_name="hwr_setup_inspection")["DATA_FILES"])
    shipped = data_files[os.path.join("share/hwr/models", DEFAULT_MODEL_NAME)]
    assert os.path.join("models", DEFAULT_MODEL_NAME, "model.safetensors") in shipped
    assert any(target.startswith("share/hwr/data/fonts") for target in data_files)


def test_installed_copy_is_found_when_no_checkout_is_beside_the_package(tmp_path, monkeypatch):
    from hwr import assets

    installed = tmp_path / "share" / "hwr"
    shutil.copytree(SHIPPED, installed / "models" / DEFAULT_MODEL_NAME)
    monkeypatch.setattr(assets, "_REPO_ROOT", tmp_path / "no-checkout")
    monkeypatch.setattr(assets, "_INSTALLED_ROOT", installed)
    monkeypatch.delenv("HWR_MODEL", raising=False)
    monkeypatch.delenv("HWR_MODELS_DIR", raising=False)
    assert default_model_dir() == installed / "models" / DEFAULT_MODEL_NAME


def test_cli_transcribes_with_the_shipped_model_by_default(monkeypatch):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HWR_MODEL"}
    proc = subprocess.run([sys.executable, "-m", "hwr", "transcribe", str(REPO / "data/samples/line-01.png"),
                           "--device", "cpu"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    reference = (REPO / "data/samples/line-01.gt.txt").read_text().strip()
    from hwr.scoring.metrics import cer

    assert cer(reference, proc.stdout.strip()) < 0.5, (reference, proc.stdout)
