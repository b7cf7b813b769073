"""hwr.synth.letters and the harder validation set: real EMNIST letters at handwriting
proportions, a fixed held-out share, and `synth:hard:N`. Not tested: EMNIST label quality."""
from __future__ import annotations

import numpy as np

from hwr.datasets import open_dataset
from hwr.synth import VALIDATION_FONTS, LineSynthesizer
from hwr.synth.config import default_data_dir
from hwr.synth.digits import held_out, read_labelled
from hwr.synth.letters import EMNIST_LETTERS, LETTERS_FILE, EmnistLetters
from hwr.synth.render import EMNIST_FONT

LETTERS = default_data_dir() / LETTERS_FILE


def test_a_fixed_share_is_held_out_and_the_splits_are_disjoint():
    mask = held_out(1000)
    assert mask.sum() == 150 and np.array_equal(mask, held_out(1000))
    train, val = read_labelled(LETTERS, "train"), read_labelled(LETTERS, "val")
    n_train, n_val = sum(map(len, train.values())), sum(map(len, val.values()))
    assert abs(n_val / (n_train + n_val) - 0.15) < 0.001
    assert set(train) == set(val) == set(EMNIST_LETTERS)
    # Disjoint samples: no validation image also occurs in training.
    seen = {im.tobytes() for images in train.values() for im in images}
    assert sum(im.tobytes() in seen for images in val.values() for im in images) < 5  # EMNIST has a few duplicates


def test_letters_take_their_handwriting_sizes():
    letters = EmnistLetters(LETTERS, "val")
    rng = np.random.default_rng(0)
    xh = 30.0
    heights = {ch: np.median([letters.glyph(ch, rng, xh)[0].shape[0] for _ in range(15)]) for ch in "aolgA"}
    assert 25 <= heights["a"] <= 35 and 25 <= heights["o"] <= 35
    assert heights["l"] > 1.3 * heights["a"] and heights["A"] > 1.25 * heights["o"]
    mask, top = letters.glyph("g", rng, xh)
    assert top + mask.shape[0] > 0.3 * xh  # a descender hangs below the baseline
    mask, top = letters.glyph("a", rng, xh)
    assert abs(top + mask.shape[0]) <= 1  # sits on it


def test_letter_lines_write_only_the_letters_emnist_has():
    synth = LineSynthesizer(split="val", seed=3, kinds=("letters",))
    for i in range(4):
        sample = synth.sample(i)
        assert sample.meta["font"] == EMNIST_FONT and sample.meta["kind"] == "letters"
        assert set(sample.text.replace(" ", "")) <= EMNIST_LETTERS and len(sample.text) >= 5


def test_the_hard_validation_set_is_fixed_and_covers_every_condition():
    a, b = open_dataset("synth:hard:30"), open_dataset("synth:hard:30")
    samples = [a[i] for i in range(30)]
    assert all(np.array_equal(s.image, b[i].image) and s.text == b[i].text for i, s in enumerate(samples[:3]))
    assert {s.meta["condition"] for s in samples} == {"paper", "whiteboard", "binarised", "lowres", "photo"}
    assert {s.meta["font"] for s in samples} <= set(VALIDATION_FONTS) | {"mnist", "emnist"}
    assert all(s.meta["split"] == "val" for s in samples)
    other = open_dataset("synth:hard:30:5")
    assert other[0].text != samples[0].text or not np.array_equal(other[0].image, samples[0].image)
